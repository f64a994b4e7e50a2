"""Calibration: reliability diagrams, expected calibration error (ECE) and temperature scaling.

Chapter 2 (``book/02_softmax.ipynb``) measures how well the digits MLP's confidence matches its accuracy
and shows that dividing the logits by one fitted temperature (Guo et al., 2017) lowers the ECE. Later
chapters (quantification) reuse :func:`expected_calibration_error` on multimodal models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ReliabilityBins:
    """Per confidence bin: edges ``[n_bins+1]``, mean confidence, accuracy and count ``[n_bins]``."""

    edges: Tensor
    confidence: Tensor  # nan where a bin is empty
    accuracy: Tensor  # nan where a bin is empty
    count: Tensor

    @property
    def ece(self) -> float:
        """Count-weighted mean of ``|accuracy - confidence|`` over the non-empty bins."""
        keep = self.count > 0
        w = self.count[keep].double() / self.count.sum()
        return float((w * (self.accuracy[keep] - self.confidence[keep]).abs().double()).sum())


def _check_probs(probs: Tensor, labels: Tensor) -> None:
    if probs.dim() != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"expected probs [N, C] and labels [N], got probs {list(probs.shape)} and labels "
                         f"{list(labels.shape)}")
    if probs.numel() and (probs.min() < 0 or probs.max() > 1):
        raise ValueError("probs must be probabilities in [0, 1] (did you pass logits? apply softmax first)")


def reliability_bins(probs: Tensor, labels: Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Group predictions into ``n_bins`` equal-width bins of confidence (the top probability), ``(lo, hi]``.

    Args:
        probs: ``[N, C]`` class probabilities; labels: ``[N]`` int64 true classes.
    """
    _check_probs(probs, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs, labels = probs.detach().float().cpu(), labels.detach().cpu()
    conf, pred = probs.max(dim=1)  # [N]
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    idx = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, n_bins - 1)  # bin i holds (e_i, e_{i+1}]
    count = torch.bincount(idx, minlength=n_bins)
    sum_conf = torch.zeros(n_bins).index_add_(0, idx, conf)
    sum_acc = torch.zeros(n_bins).index_add_(0, idx, correct)
    denom = count.clamp_min(1).float()
    empty = count == 0
    nan = torch.full((n_bins,), float("nan"))
    return ReliabilityBins(edges, torch.where(empty, nan, sum_conf / denom), torch.where(empty, nan, sum_acc / denom),
                           count)


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """ECE: ``sum_b (n_b / N) |acc_b - conf_b|`` over equal-width confidence bins (0 = perfectly calibrated)."""
    return reliability_bins(probs, labels, n_bins).ece


def fit_temperature(logits: Tensor, labels: Tensor, *, low: float = 0.05, high: float = 20.0,
                    steps: int = 400) -> float:
    """The temperature ``T`` that minimises the negative log-likelihood of ``softmax(logits / T)``.

    Fit it on held-out (validation) data, never on the test set. A grid in log-space followed by a local
    refinement: robust (the NLL in ``T`` has one minimum) and fast for the sizes of this course.
    """
    if logits.dim() != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits [N, C] and labels [N], got {list(logits.shape)} and {list(labels.shape)}")
    logits, labels = logits.detach().double(), labels.detach()

    def nll(ts: Tensor) -> Tensor:  # [S] temperatures -> [S] mean NLL
        z = logits.unsqueeze(0) / ts.view(-1, 1, 1)  # [S, N, C]
        return F.cross_entropy(z.flatten(0, 1), labels.repeat(len(ts)), reduction="none").view(len(ts), -1).mean(1)

    grid = torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)), steps,
                          dtype=torch.float64)
    best = int(nll(grid).argmin())
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, steps - 1)]
    fine = torch.linspace(float(lo), float(hi), 101, dtype=torch.float64)
    return float(fine[nll(fine).argmin()])


def plot_reliability(bins: ReliabilityBins, *, ax: Any = None, label: str = "model", color_index: int = 0,
                     title: str = "") -> Any:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration.

    Bars show each bin's accuracy; the gap to the diagonal is the miscalibration the ECE averages.
    """
    from mmcourse.analysis.plots import color, subplots

    if ax is None:
        _, ax = subplots()
    e = bins.edges.numpy()
    width = e[1:] - e[:-1]
    acc = torch.nan_to_num(bins.accuracy, nan=0.0).numpy()
    ax.bar(e[:-1], acc, width=width, align="edge", alpha=0.6, color=color(color_index), edgecolor="black",
           linewidth=0.5, label=f"{label} (ECE {bins.ece:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect calibration")
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=title or "reliability diagram")
    ax.legend(loc="upper left", fontsize="small", framealpha=0.9)
    return ax
