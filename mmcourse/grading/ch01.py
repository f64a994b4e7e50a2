"""Hidden tests of chapter 1's exercises (``solutions/01_fully_connected.ipynb``): linear forward, backward, init.

The forward may not call ``F.linear`` (nor ``nn.Linear``, which calls it), the backward may not use autograd,
and the initialisation is tested for its distribution (a Kolmogorov–Smirnov distance to the normal), not
only its standard deviation: a uniform draw with the right spread fails.

Also holds :func:`assert_tensor_close`, the comparison chapters 2 and 3 reuse: it names the shape or the
position where a learner's tensor differs from the reference, so the message says what to fix.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from mmcourse.grading.registry import register


def assert_tensor_close(got: Any, want: torch.Tensor, what: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise ``AssertionError`` with an actionable message unless ``got`` is a tensor close to ``want``."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {list(want.shape)}, got {list(got.shape)}")
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        raise AssertionError(f"{what}: your result holds nan/inf where the reference is finite "
                             f"(overflow? see the stability section of the chapter)")
    try:
        torch.testing.assert_close(got.to(want.dtype), want, atol=atol, rtol=rtol)
    except AssertionError as e:
        diff = (got.to(want.dtype) - want).abs()
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.numel() else ()
        raise AssertionError(f"{what}: values differ from the reference; largest difference {float(diff.max()):.3g} "
                             f"at index {list(where)} (got {float(got.flatten()[diff.argmax()]):.5g}, expected "
                             f"{float(want.flatten()[diff.argmax()]):.5g})") from e


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@register("01.linear_forward", points=1, hint="y = x @ W.T + b; W has one row per output neuron", timeout=20,
          forbid=("linear",), forbid_note="write x @ W.T + b with tensor operations (no F.linear, no nn.Linear)")
def _linear_forward(fn: Any) -> None:
    for seed, (lead, n_in, n_out) in enumerate([((4,), 3, 2), ((5,), 7, 1), ((2, 3), 6, 4)]):
        g = _gen(seed)
        x, w, b = torch.randn(*lead, n_in, generator=g), torch.randn(n_out, n_in, generator=g), torch.randn(n_out,
                                                                                                              generator=g)
        assert_tensor_close(fn(x, w, b), F.linear(x, w, b),
                            f"linear_forward(x {list(x.shape)}, W {list(w.shape)}, b {list(b.shape)})")


@register("01.linear_backward", points=2,
          hint="each gradient has the shape of what it differentiates; combine grad_out [N, out] with W "
          "[out, in] or x [N, in] so the shapes work out, and sum db over the batch", timeout=20,
          forbid=("backward", "grad"), forbid_note="use the chain rule by hand, not autograd")
def _linear_backward(fn: Any) -> None:
    for seed, (n, n_in, n_out) in enumerate([(4, 3, 2), (7, 5, 6), (1, 4, 3)]):
        g = _gen(10 + seed)
        x = torch.randn(n, n_in, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(n_out, generator=g, dtype=torch.float64, requires_grad=True)
        grad_out = torch.randn(n, n_out, generator=g, dtype=torch.float64)
        F.linear(x, w, b).backward(grad_out)
        got = fn(x.detach(), w.detach(), grad_out)
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            raise AssertionError(f"linear_backward must return a tuple (grad_x, grad_W, grad_b), got {type(got)}")
        where = f"x {list(x.shape)}, W {list(w.shape)}"
        for name, mine, ref in zip(("grad_x", "grad_W", "grad_b"), got, (x.grad, w.grad, b.grad)):
            assert_tensor_close(mine, ref, f"{name} for {where}", atol=1e-8, rtol=1e-6)


def ks_distance(w: torch.Tensor, std: float) -> float:
    """Kolmogorov–Smirnov distance between the values of ``w`` and the normal distribution N(0, std²)."""
    z = (w.detach().flatten().double() / std).sort().values
    n = z.numel()
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    rank = torch.arange(1, n + 1, dtype=torch.double)
    return float(torch.maximum(rank / n - cdf, cdf - (rank - 1) / n).max())


@register("01.kaiming_init", points=1,
          hint="scale a standard normal of shape [fan_out, fan_in] (drawn with generator=generator) by "
          "sqrt(2 / fan_in)", timeout=20)
def _kaiming_init(fn: Any) -> None:
    for fan_in, fan_out in [(400, 300), (100, 800), (1600, 200)]:
        w = fn(fan_in, fan_out, torch.Generator().manual_seed(fan_in))
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (fan_out, fan_in):
            raise AssertionError(f"kaiming_init({fan_in}, {fan_out}) must return a tensor of shape "
                                 f"[{fan_out}, {fan_in}] (one row per output), got "
                                 f"{list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
        want = math.sqrt(2 / fan_in)
        std, mean = float(w.std()), float(w.mean())
        assert abs(std / want - 1) < 0.05, (f"kaiming_init({fan_in}, {fan_out}): std {std:.4f}, expected "
                                            f"sqrt(2 / fan_in) = {want:.4f}")
        assert abs(mean) < 0.1 * want, f"kaiming_init({fan_in}, {fan_out}): mean {mean:.4f}, expected about 0"
        distance = ks_distance(w, want)  # about 0.003 for a normal sample this size, 0.06 for a uniform one
        assert distance < 0.01, (f"kaiming_init({fan_in}, {fan_out}): the right spread, but the weights are not "
                                 f"normally distributed (Kolmogorov–Smirnov distance {distance:.3f} from "
                                 "N(0, 2 / fan_in)); draw from a normal distribution (torch.randn), not a uniform "
                                 "or truncated one")
    a = fn(50, 50, torch.Generator().manual_seed(1))
    b = fn(50, 50, torch.Generator().manual_seed(1))
    assert torch.equal(a, b), "kaiming_init must draw from the generator it is given (same seed, same weights)"
