"""Hidden tests of chapter 2's exercises (``solutions/02_softmax.ipynb``): cross-entropy, its gradient with
respect to the logits written by hand, the expected calibration error, and a find-the-bug classifier head.

The cross-entropy may not call ``F.cross_entropy`` or ``F.nll_loss``; its gradient may not use autograd
(``backward``, ``torch.autograd.grad``) nor ``F.cross_entropy``. The classifier head is the source post's
(``nn.Linear(input_size, input_size)`` followed by a ReLU, read as logits), fixed by the learner; a
module-level probe builds it, so it can be graded as a class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.analysis.calibration import expected_calibration_error
from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.probing import run_module
from mmcourse.grading.registry import register

LOSSES = ("cross_entropy", "nll_loss")
AUTOGRAD = ("backward", "grad")


@register("02.cross_entropy", points=2,
          hint="mean over non-ignored rows of -(1-eps) log p[y] - eps/C * sum_c log p[c]", timeout=20,
          forbid=LOSSES, forbid_note="compute it from a log-softmax, .gather and .mean")
def _cross_entropy(fn: Any) -> None:
    g = torch.Generator().manual_seed(1)
    for eps in (0.0, 0.1, 0.3):
        for ignore in (False, True):
            z = torch.randn(9, 5, generator=g) * 3
            y = torch.randint(0, 5, (9,), generator=g)
            if ignore:
                y[::4] = -100
            what = f"cross_entropy(label_smoothing={eps}{', some targets = -100 (ignored)' if ignore else ''})"
            assert_tensor_close(fn(z, y, label_smoothing=eps, ignore_index=-100),
                                F.cross_entropy(z, y, label_smoothing=eps, ignore_index=-100), what)
    y = torch.tensor([1, 2, 3])
    z = torch.tensor([[0.0, 800.0, 0.0, 0.0], [0.0, 0.0, -800.0, 0.0], [900.0, 0.0, 0.0, 1.0]])
    assert_tensor_close(fn(z, y, label_smoothing=0.0, ignore_index=-100), F.cross_entropy(z, y),
                        "cross_entropy with logits near +-800 (a stable log-softmax, never log(softmax))")


def _ce_reference_grad(z: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    zr = z.clone().requires_grad_()
    F.cross_entropy(zr, y, label_smoothing=eps, ignore_index=-100).backward()
    assert zr.grad is not None
    return zr.grad


@register("02.ce_grad", points=2, timeout=20, forbid=(*AUTOGRAD, *LOSSES),
          forbid_note="derive the gradient by hand: softmax minus the (smoothed) target, over the kept rows",
          hint="kept rows: (softmax(z) - q) / K with q = (1-eps)·onehot(y) + eps/C and K the number of kept "
               "rows; ignored rows: 0")
def _ce_grad(fn: Any) -> None:
    g = torch.Generator().manual_seed(7)
    cases = [(6, 4, 0.0, False), (9, 5, 0.0, True), (8, 3, 0.1, False), (12, 6, 0.2, True), (5, 10, 0.4, True)]
    for n, c, eps, ignore in cases:
        z = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
        y = torch.randint(0, c, (n,), generator=g)
        if ignore:
            y[1::3] = -100
        keep = y != -100
        want = _ce_reference_grad(z, y, eps)
        what = (f"ce_grad(logits [{n}, {c}], label_smoothing={eps}"
                f"{', some targets = -100 (ignored)' if ignore else ''})")
        got = fn(z.clone(), y.clone(), label_smoothing=eps, ignore_index=-100)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype:
            k = int(keep.sum())
            if ignore and got[~keep].abs().max() > 1e-9:
                raise AssertionError(f"{what}: rows whose target is ignore_index (-100) must get zero gradient: "
                                     "they are not in the loss")
            if torch.allclose(got, want * k, atol=1e-9):
                raise AssertionError(f"{what}: this is the gradient of the sum of the losses; the loss is their "
                                     f"mean over the {k} non-ignored rows, so divide by that number")
            if ignore and torch.allclose(got, want * k / n, atol=1e-9):
                raise AssertionError(f"{what}: you divide by all {n} rows; the mean is over the {k} rows that are "
                                     "not ignored (ignore_index)")
            if eps > 0:
                plain = _ce_reference_grad(z, y, 0.0)
                if torch.allclose(got, plain, atol=1e-9):
                    raise AssertionError(f"{what}: this is the gradient without label smoothing; with label "
                                         f"smoothing ε the target is q = (1-ε)·onehot(y) + ε/C, and the "
                                         "gradient softmax(z) - q")
        assert_tensor_close(got, want, what, atol=1e-9, rtol=1e-7)
    y = torch.tensor([1, 2, 0])
    z = torch.tensor([[0.0, 1000.0, 0.0, -5.0], [0.0, 0.0, -1000.0, 0.0], [900.0, 0.0, 0.0, 1.0]])
    assert_tensor_close(fn(z.clone(), y.clone(), label_smoothing=0.1, ignore_index=-100),
                        _ce_reference_grad(z, y, 0.1), "ce_grad with logits near +-1000 (a stable softmax)",
                        atol=1e-6)


@register("02.ece", points=1,
          hint="bin by confidence = probs.max(1); ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|",
          timeout=20)
def _ece(fn: Any) -> None:
    g = torch.Generator().manual_seed(2)
    for n_bins in (1, 5, 10):
        probs = torch.softmax(torch.randn(300, 4, generator=g) * 2, -1)
        labels = torch.randint(0, 4, (300,), generator=g)
        got, want = fn(probs, labels, n_bins), expected_calibration_error(probs, labels, n_bins)
        got = float(got)
        assert abs(got - want) < 1e-4, (f"ece(n_bins={n_bins}) = {got:.5f}, expected {want:.5f}; bins are "
                                        f"(lo, hi] of equal width on [0, 1]")
    sure = torch.tensor([[1.0, 0.0]]).repeat(10, 1)
    got = float(fn(sure, torch.arange(10) % 2, 10))
    assert abs(got - 0.5) < 1e-4, f"always 100% sure and right half the time: ECE should be 0.5, got {got:.4f}"


# --- 02.fix_head: the source post's classifier head, fixed ---------------------------------------------------

# (input_size, n_classes, seed): the post's 128 fused features, a small head, and 3 classes from 7 features.
HEAD_CASES = ((128, 10, 0), (20, 10, 1), (7, 3, 2))


class _Head(nn.Module):
    """The reference: one linear layer whose raw outputs are the logits."""

    def __init__(self, input_size: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(input_size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _head_input(input_size: int, seed: int) -> torch.Tensor:
    return torch.randn(16, input_size, generator=torch.Generator().manual_seed(50 + seed)) * 2


def probe_head(cls: Any, cases: Any) -> list[dict]:
    """Build each head, run it on a batch of features; report its outputs and parameters."""
    return [run_module(cls, (input_size, n_classes), seed, _head_input(input_size, seed),
                       f"Classifier({input_size}, {n_classes})")
            for input_size, n_classes, seed in cases]


@register("02.fix_head", points=2, timeout=30, kind="find-the-bug",
          hint="self.fc = nn.Linear(input_size, n_classes); forward returns self.fc(x) — no ReLU, no softmax: "
               "F.cross_entropy takes raw logits")
def _fix_head(fn: Any) -> None:
    seen = fn.probe(probe_head, HEAD_CASES)
    assert isinstance(seen, list) and len(seen) == len(HEAD_CASES), "the hidden test could not build your heads"
    for (input_size, n_classes, seed), s in zip(HEAD_CASES, seen):
        what = f"Classifier({input_size}, {n_classes})"
        if "error" in s:
            raise AssertionError(s["error"])
        out = s["out"]
        assert isinstance(out, torch.Tensor), f"{what}: forward should return a tensor, got {type(out).__name__}"
        if out.ndim == 2 and out.shape[1] == input_size != n_classes:
            raise AssertionError(f"{what} returns {input_size} scores per sample, one per input feature (the post's "
                                 f"nn.Linear(input_size, input_size)); a classifier needs n_classes = {n_classes} "
                                 "outputs, one logit per class")
        assert tuple(out.shape) == (16, n_classes), \
            f"{what} maps features [16, {input_size}] to {tuple(out.shape)}, expected (16, {n_classes})"
        ref = _Head(input_size, n_classes)
        try:
            ref.load_state_dict(s["state"])
        except RuntimeError:
            keys = {k: tuple(v.shape) for k, v in s["state"].items()}
            raise AssertionError(f"{what} has the parameters {keys}; keep the post's single layer, named fc, as "
                                 f"nn.Linear({input_size}, {n_classes})") from None
        with torch.no_grad():
            want = ref(_head_input(input_size, seed))
        if torch.allclose(out, torch.relu(want), atol=1e-5):
            raise AssertionError(f"{what}: the logits go through a ReLU, so none can be negative and every clipped "
                                 "logit gets zero gradient (a class can stop learning). Logits are any real "
                                 "numbers: return the linear layer's output")
        if torch.allclose(out, torch.softmax(want, 1), atol=1e-5):
            raise AssertionError(f"{what} returns probabilities (a softmax); F.cross_entropy applies the "
                                 "log-softmax itself, so the softmax would be applied twice: return the raw logits")
        if torch.allclose(out, torch.sigmoid(want), atol=1e-5):
            raise AssertionError(f"{what} returns probabilities (a sigmoid squeezes each logit into (0, 1)); "
                                 "F.cross_entropy applies the log-softmax to raw logits: return them")
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, what=what: f"{what}: the output is not the logits fc(x): {m}")
