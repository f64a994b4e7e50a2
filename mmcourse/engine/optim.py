"""Optimisers and learning-rate schedules for ``fit``: AdamW or SGD; warm-up + cosine, one-cycle, constant.

Chapter 4 compares SGD and AdamW; chapter 12 explains why warm-up helps large batches.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, device: torch.device
                   ) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum 0.9, Nesterov). Weight decay applies to weight matrices and kernels only,
    never to biases or normalisation scales (1-D parameters)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}; use one of {OPTIMIZERS}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all frozen?)")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    fused = {"fused": True} if device.type == "cuda" else {}
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, **fused)


def warmup_steps(warmup: float, total_steps: int) -> int:
    """``warmup`` < 1 is a fraction of all steps, ≥ 1 a number of steps."""
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    return int(round(warmup * total_steps)) if warmup < 1 else int(warmup)


class _WarmupCosine:
    """Linear warm-up from ``start`` (or ~0) to the base LR, then cosine decay to ``end`` (LR multipliers)."""

    def __init__(self, warm: int, total: int, start: float | None = None, end: float = 0.0):
        self.warm, self.total, self.start, self.end = warm, max(total, 1), start, end

    def __call__(self, step: int) -> float:
        if step < self.warm:
            if self.start is None:
                return (step + 1) / (self.warm + 1)
            return self.start + (1.0 - self.start) * step / self.warm
        progress = min((step - self.warm) / max(self.total - self.warm, 1), 1.0)
        return self.end + (1.0 - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup: float, lr: float
                  ) -> LRScheduler:
    """A per-step LR schedule: ``cosine`` (linear warm-up then cosine to 0), ``onecycle`` (Smith's one-cycle
    policy for the LR: from lr/25 up to lr over ``warmup`` (default 30 %) of the steps, then cosine down to
    lr/25e4) or ``constant`` (warm-up then flat)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule={name!r}; use one of {SCHEDULES}")
    warm = warmup_steps(warmup, total_steps)
    if name == "onecycle":
        warm = warm or int(round(0.3 * total_steps))
        return LambdaLR(optimizer, _WarmupCosine(warm, total_steps, start=1 / 25, end=1 / 25e4))
    if name == "constant":
        return LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warm + 1)) if warm else 1.0)
    return LambdaLR(optimizer, _WarmupCosine(warm, total_steps))
