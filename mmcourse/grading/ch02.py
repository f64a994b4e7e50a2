"""Hidden tests of chapter 2's exercises (``solutions/02_softmax.ipynb``): log-softmax, cross-entropy, ECE.

As the tasks say, the log-softmax may not call torch's softmax, log-softmax or logsumexp (in any spelling:
``torch.``, ``F.``, a tensor method, ``torch.special``), and the cross-entropy uses the learner's own
log-softmax, not ``F.cross_entropy``, ``F.nll_loss`` or torch's log-softmax.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mmcourse.analysis.calibration import expected_calibration_error
from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.registry import register

SOFTMAXES = ("log_softmax", "_log_softmax", "softmax", "_softmax", "logsumexp", "special_log_softmax",
             "special_softmax", "special_logsumexp")


@register("02.log_softmax", points=1,
          hint="subtract the row maximum first: (x - m) - log(sum(exp(x - m)))", timeout=20,
          forbid=SOFTMAXES, forbid_note="compute it from x.amax, torch.exp, .sum and torch.log")
def _log_softmax(fn: Any) -> None:
    g = torch.Generator().manual_seed(0)
    for dim, x in [(-1, torch.randn(4, 6, generator=g)), (0, torch.randn(5, 3, generator=g)),
                   (1, torch.randn(2, 7, 3, generator=g) * 10)]:
        assert_tensor_close(fn(x, dim), torch.log_softmax(x, dim), f"log_softmax(x {list(x.shape)}, dim={dim})")
    big = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.0, -1002.0]])
    assert_tensor_close(fn(big, -1), torch.log_softmax(big, -1), "log_softmax of logits near +-1000")


@register("02.cross_entropy", points=2,
          hint="mean over non-ignored rows of -(1-eps) log p[y] - eps/C * sum_c log p[c]", timeout=20,
          forbid=("cross_entropy", "nll_loss", *SOFTMAXES), forbid_note="use your own log_softmax")
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
                        "cross_entropy with logits near +-800 (use your stable log_softmax)")


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
