"""Hidden tests of chapter 3's exercises (``solutions/03_convolution.ipynb``): conv2d, output shape, max-pool.

Convolution is tested on inputs whose height and width differ (a swapped H and W fails) and may not call
``F.conv2d``; max-pooling may not call ``F.max_pool2d``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.registry import register


@register("03.conv2d", points=2, hint="pad, unfold the input into patch columns, then one matmul with the "
          "weight reshaped to [C_out, C_in*kH*kW]", timeout=30, forbid=("conv2d", "convolution", "_convolution"),
          forbid_note="compute it with F.unfold and one matrix product")
def _conv2d(fn: Any) -> None:
    g = torch.Generator().manual_seed(0)
    for n, c_in, c_out, k, (h, w_), stride, padding in [(2, 3, 4, 3, (8, 11), 1, 0), (1, 1, 2, 2, (5, 7), 1, 1),
                                                        (2, 2, 3, 3, (9, 6), 2, 1), (1, 3, 1, 5, (7, 10), 1, 2),
                                                        (1, 2, 2, 3, (6, 6), 1, 1)]:
        x = torch.randn(n, c_in, h, w_, generator=g)  # height != width: a swapped H and W shows
        w = torch.randn(c_out, c_in, k, k, generator=g)
        got = fn(x, w, stride=stride, padding=padding)
        want = F.conv2d(x, w, stride=stride, padding=padding)
        what = f"conv2d(x {list(x.shape)}, w {list(w.shape)}, stride={stride}, padding={padding})"
        if isinstance(got, torch.Tensor) and got.shape != want.shape and got.shape == want.transpose(-1, -2).shape:
            raise AssertionError(f"{what}: output shape {list(got.shape)}, expected {list(want.shape)}: height and "
                                 "width are swapped (the output is [N, C_out, H_out, W_out])")
        if isinstance(got, torch.Tensor) and got.shape == want.shape and h == w_ and not torch.allclose(
                got, want, atol=1e-4) and torch.allclose(got, want.transpose(-1, -2), atol=1e-4):
            raise AssertionError(f"{what}: your output is the transpose of the right one: rows and columns swapped")
        assert_tensor_close(got, want, what, atol=1e-4)


@register("03.output_shape", points=1, hint="floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1",
          timeout=10)
def _output_shape(fn: Any) -> None:
    cases = [(32, 3, 1, 1, 1), (32, 3, 2, 1, 1), (28, 5, 1, 0, 1), (8, 3, 1, 0, 2), (7, 2, 2, 0, 1), (10, 4, 3, 2, 1),
             (224, 7, 2, 3, 1), (9, 3, 2, 2, 3)]
    for size, k, s, p, d in cases:
        want = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p,
                        dilation=d).shape[-1]
        got = fn(size, k, s, p, d)
        assert got == want, (f"output_shape(size={size}, kernel={k}, stride={s}, padding={p}, dilation={d}) "
                             f"returned {got}, F.conv2d gives {want}")


@register("03.maxpool", points=1, hint="reshape to [N, C, H/k, k, W/k, k] and take amax over the two k axes",
          timeout=20, forbid=("max_pool2d", "max_pool2d_with_indices", "adaptive_max_pool2d"),
          forbid_note="crop, view as [N, C, H//k, k, W//k, k] and take the maximum")
def _maxpool(fn: Any) -> None:
    g = torch.Generator().manual_seed(3)
    for shape, k in [((2, 3, 8, 8), 2), ((1, 2, 9, 6), 3), ((3, 1, 4, 4), 4), ((1, 1, 7, 7), 2)]:
        x = torch.randn(*shape, generator=g)
        assert_tensor_close(fn(x, k), F.max_pool2d(x, k), f"max_pool(x {list(shape)}, kernel={k})"
                            + (" (sizes not divisible by k: drop the leftover rows/columns)" if shape[-1] % k else ""))
