"""Hidden tests of chapter 3's exercises (``solutions/03_convolution.ipynb``): output shape, the backward pass
of a convolution written by hand, max-pool, and a find-the-bug network (the source post's LeNet, whose
flatten size is fixed for 32×32 images).

The backward pass is tested on inputs whose height and width differ (a swapped H and W fails) and may not call
``F.conv2d``, ``F.conv_transpose2d``, ``torch.nn.grad`` or autograd; max-pooling may not call
``F.max_pool2d``. The network is a class: a module-level probe builds it and reports its outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.probing import run_module
from mmcourse.grading.registry import register

CONV_FORBID = ("conv2d", "convolution", "_convolution", "conv_transpose2d", "convolution_backward", "backward", "grad")


@register("03.conv2d_backward", points=2, timeout=30, forbid=CONV_FORBID,
          forbid_note="derive both gradients by hand with F.unfold, matrix products and F.fold",
          hint="cols = F.unfold(x, k, padding, stride); g = grad_out.reshape(N, C_out, L); dw = sum over the batch "
               "of g @ cols^T; dx = F.fold(W^T @ g, (H, W), k, padding, stride)")
def _conv2d_backward(fn: Any) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [(2, 3, 4, (3, 3), (8, 11), 1, 0), (1, 1, 2, (2, 2), (5, 7), 1, 1), (2, 2, 3, (3, 3), (9, 6), 2, 1),
             (3, 3, 2, (2, 3), (7, 10), 2, 0), (1, 2, 2, (5, 5), (11, 8), 3, 2), (2, 2, 2, (3, 3), (6, 6), 1, 1)]
    for n, c_in, c_out, (kh, kw), (h, w_), stride, padding in cases:
        x = torch.randn(n, c_in, h, w_, generator=g, dtype=torch.float64)  # height != width: a swap shows
        w = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=torch.float64)
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = F.conv2d(xr, wr, stride=stride, padding=padding)
        grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
        out.backward(grad_out)
        assert xr.grad is not None and wr.grad is not None
        want_dx, want_dw = xr.grad, wr.grad
        what = (f"conv2d_backward(x {list(x.shape)}, w {list(w.shape)}, grad_out {list(grad_out.shape)}, "
                f"stride={stride}, padding={padding})")
        got = fn(x.clone(), w.clone(), grad_out.clone(), stride=stride, padding=padding)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise AssertionError(f"{what}: return the tuple (dx, dw), got {type(got).__name__}")
        dx, dw = got
        if isinstance(dw, torch.Tensor) and dw.shape == want_dw.shape and torch.allclose(dw, want_dw / n,
                                                                                         atol=1e-9) and n > 1:
            raise AssertionError(f"{what}: dw is the mean over the batch; every sample uses the same weights, so "
                                 "their gradients add up: sum over the batch")
        assert_tensor_close(dw, want_dw, f"{what}: dw", atol=1e-9, rtol=1e-7)
        if isinstance(dx, torch.Tensor) and tuple(dx.shape) != tuple(want_dx.shape):
            if tuple(dx.shape) == (n, c_in, h + 2 * padding, w_ + 2 * padding) and padding:
                raise AssertionError(f"{what}: dx has the shape of the padded input {list(dx.shape)}; the padding is "
                                     f"not part of x: crop it (dx has x's shape {list(want_dx.shape)})")
            if tuple(dx.shape) == (n, c_in, w_, h):
                raise AssertionError(f"{what}: dx has shape {list(dx.shape)}, expected {list(want_dx.shape)}: height "
                                     "and width are swapped")
        assert_tensor_close(dx, want_dx, f"{what}: dx", atol=1e-9, rtol=1e-7)


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


# --- 03.fix_flatten: the source post's LeNet, whose flatten size only fits 32×32 images -------------------------

# (height, width, batch, seed): the post's 32×32, 28×28 with a batch of 25 (the post's view(-1, 16*5*5) then
# silently returns 16 rows), two non-square sizes, one with odd sides (the pools floor).
NET_CASES = ((32, 32, 4, 0), (28, 28, 25, 1), (36, 20, 3, 2), (21, 45, 5, 3))


def _size(n: int, k: int, stride: int = 1) -> int:
    return (n - k) // stride + 1


def flat_size(height: int, width: int) -> tuple[int, int, int]:
    """(h', w', 16·h'·w'): the map entering fc1 of the fixed LeNet for a height × width image."""
    h, w = (_size(_size(_size(_size(n, 5), 2, 2), 5), 2, 2) for n in (height, width))
    return h, w, 16 * h * w


class _LeNet(nn.Module):
    """The reference: the post's LeNet with fc1 sized for the image and a flatten that keeps the batch."""

    def __init__(self, height: int, width: int, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(flat_size(height, width)[2], 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _net_input(height: int, width: int, batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(200 + seed))


def probe_net(cls: Any, cases: Any) -> list[dict]:
    """Build each network for its image size and run it on a batch; report the outputs and parameters."""
    return [run_module(cls, (height, width), seed, _net_input(height, width, batch, seed), f"Net({height}, {width})",
                       on=f" on a batch [{batch}, 3, {height}, {width}]")
            for height, width, batch, seed in cases]


@register("03.fix_flatten", points=2, timeout=60, kind="find-the-bug",
          hint="h' = output_shape(output_shape(output_shape(output_shape(height, 5), 2, 2), 5), 2, 2), the same for "
               "w'; fc1 = nn.Linear(16 * h' * w', 120); in forward, x.flatten(1) instead of x.view(-1, 16 * 5 * 5)")
def _fix_flatten(fn: Any) -> None:
    seen = fn.probe(probe_net, NET_CASES)
    assert isinstance(seen, list) and len(seen) == len(NET_CASES), "the hidden test could not build your networks"
    for (height, width, batch, seed), s in zip(NET_CASES, seen):
        what = f"Net({height}, {width})"
        hh, ww, flat = flat_size(height, width)
        sizes = (f"for a {height}×{width} image the map entering fc1 is 16 × {hh} × {ww} = {flat} numbers per "
                 "image (the output-shape formula after each conv and pool, for the height and the width)")
        if "error" in s:
            raise AssertionError(f"{s['error']}. {sizes[0].upper()}{sizes[1:]}: size fc1 for it, and flatten with "
                                 "x.flatten(1), which keeps the batch dimension")
        out = s["out"]
        assert isinstance(out, torch.Tensor), f"{what}: forward should return a tensor, got {type(out).__name__}"
        if out.ndim == 2 and out.shape[0] != batch:
            raise AssertionError(f"{what} returns {out.shape[0]} rows for a batch of {batch} images: view(-1, n) with "
                                 "the wrong n folds the numbers of several images into one row (or one image into "
                                 f"several) without an error; {sizes}. Flatten with x.flatten(1)")
        assert tuple(out.shape) == (batch, 10), \
            f"{what} maps a batch [{batch}, 3, {height}, {width}] to {tuple(out.shape)}, expected ({batch}, 10)"
        ref = _LeNet(height, width)
        try:
            ref.load_state_dict(s["state"])
        except RuntimeError:
            keys = {k: tuple(v.shape) for k, v in s["state"].items()}
            raise AssertionError(f"{what} has the parameters {keys}; keep the post's layers and names (conv1, pool, "
                                 f"conv2, fc1, fc2, fc3); only fc1's input size changes: {sizes}") from None
        with torch.no_grad():
            want = ref(_net_input(height, width, batch, seed))
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4, msg=lambda m, what=what: (
            f"{what}: the output differs from the post's network with fc1 resized (conv1, ReLU, pool, conv2, ReLU, "
            f"pool, flatten, fc1, ReLU, fc2, ReLU, fc3): {m}"))
