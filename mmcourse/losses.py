"""Losses over the multimodal contract, and the one rule for unlabelled samples (chapters 9–13).

``fit`` minimises any callable ``loss(outputs, batch)`` that returns a scalar tensor, or a pair
``(total, parts)`` whose ``parts`` are named device scalars to log: a part is either a batch mean (averaged
over the epoch weighted by the batch size) or a ``(sum, count)`` pair (the epoch reports Σ sum / Σ count).
This module holds the default, :class:`TaskCrossEntropy`, and the rule training and ``evaluate`` share:
a target of ``IGNORE_INDEX`` (-100) means "no label", so that sample adds nothing to its task's loss or
accuracy, and every task is averaged over its labelled samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Union

import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.batch import IGNORE_INDEX, Batch

Part = Union[Tensor, tuple[Tensor, Tensor]]  # a batch mean, or (sum, count)
LossResult = Union[Tensor, tuple[Tensor, Mapping[str, Part]]]
LossFn = Callable[[Mapping[str, Tensor], Batch], LossResult]


def common_tasks(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> list[str]:
    """The tasks both predicted and labelled, sorted; a clear error when there are none."""
    tasks = sorted(set(outputs) & set(targets))
    if not tasks:
        raise ValueError(f"the model predicts tasks {sorted(outputs)} but the data has targets {sorted(targets)};"
                         " at least one task must be in both")
    return tasks


def task_sums(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """Per task ``(summed cross-entropy, correct predictions, labelled samples)`` over the labelled samples.

    All three are device tensors (no host synchronisation). Logits are ``[B, C]``, targets ``[B]`` int64.
    """
    out = {}
    for t in common_tasks(outputs, targets):
        logits, y = outputs[t].float(), targets[t]
        labelled = y != IGNORE_INDEX  # [B]
        ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
        correct = ((logits.argmax(-1) == y) & labelled).sum()
        out[t] = (ce, correct, labelled.sum())
    return out


def check_task_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Plain float weights, each a finite number >= 0 (names are checked against the tasks on the first batch)."""
    clean = {}
    for t, w in dict(weights or {}).items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise TypeError(f"task weight for {t!r} must be a finite number, got {w!r}")
        if w < 0:
            raise ValueError(f"task weight for {t!r} must be >= 0, got {w}")
        clean[str(t)] = float(w)
    return clean


class TaskCrossEntropy(nn.Module):
    """The default loss of ``fit``: ``sum_t w_t * mean cross-entropy of task t`` over its labelled samples.

    Tasks are those both in the model's outputs and the batch's targets. Parts logged per epoch:
    ``loss/<task>`` and ``acc/<task>`` (each a ``(sum, labelled count)`` pair, so -100 labels never count).

    Args:
        weights: ``{task: weight >= 0}``; tasks not named weigh 1. A name that is not a task of the
            batch raises ``KeyError`` listing the valid ones (on the first batch, before any step).
    """

    def __init__(self, weights: Mapping[str, float] | None = None):
        super().__init__()
        self.weights = check_task_weights(weights)

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Part]]:
        sums = task_sums(outputs, batch.targets)
        unknown = sorted(set(self.weights) - set(sums))
        if unknown:
            raise KeyError(f"task_weights name {unknown}, which the model and data do not share; valid task "
                           f"names: {sorted(sums)}")
        total, parts = None, {}
        for t, (ce, correct, n) in sums.items():
            term = self.weights.get(t, 1.0) * ce / n.clamp_min(1)  # a task with no labels here adds 0, not NaN
            total = term if total is None else total + term
            parts[f"loss/{t}"] = (ce, n)
            parts[f"acc/{t}"] = (correct, n)
        return total, parts


def split_result(result: LossResult, who: str = "the loss") -> tuple[Tensor, dict[str, Part]]:
    """``(total, parts)`` from what a loss returned (a tensor, or a tensor and a dict of parts)."""
    if isinstance(result, Tensor):
        total, parts = result, {}
    elif isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Tensor):
        total, parts = result[0], dict(result[1] or {})
    else:
        raise TypeError(f"{who} must return a scalar tensor or (tensor, {{name: part}}), got {type(result).__name__}")
    if total.dim() != 0:
        raise ValueError(f"{who} must return a scalar (0-d) tensor, got shape {list(total.shape)}")
    return total, parts
