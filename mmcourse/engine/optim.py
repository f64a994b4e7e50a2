"""Optimisers and learning-rate schedules for ``fit``: a name, a ready optimiser or a factory over parameter
groups; warm-up + cosine, one-cycle, constant.

Chapter 5 compares SGD and AdamW; chapter 12 passes discriminative param groups; chapter 13 explains why
warm-up helps large batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Union

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")


def param_groups(model: nn.Module, weight_decay: float, extra: Iterable[nn.Parameter] = ()) -> list[dict[str, Any]]:
    """fit's default groups: ``decay`` (weight matrices and kernels), ``no_decay`` (biases, norm scales: 1-D
    parameters) and ``loss`` (the loss's own parameters, no decay). Frozen parameters are included, so that a
    callback that unfreezes them later (gradual unfreezing) trains them; they take no step while frozen."""
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        raise ValueError("the model has no trainable parameters (all frozen?)")
    seen = {id(p) for p in params}
    extra = [p for p in extra if id(p) not in seen]
    groups = [{"name": "decay", "params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"name": "no_decay", "params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
              {"name": "loss", "params": extra, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, device: torch.device,
                   extra: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum 0.9, Nesterov) over :func:`param_groups` (weight decay on weight matrices and
    kernels only, never on biases or normalisation scales; ``extra``: the loss's parameters)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}; use one of {OPTIMIZERS}, an optimiser, or a factory over groups")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    groups = param_groups(model, weight_decay, extra)
    fused = {"fused": True} if device.type == "cuda" else {}
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, **fused)


OptimizerSpec = Union[str, torch.optim.Optimizer, Callable[[list[dict[str, Any]]], torch.optim.Optimizer]]


def build_optimizer(spec: OptimizerSpec, model: nn.Module, loss: object, *, lr: float, weight_decay: float,
                    device: torch.device) -> torch.optim.Optimizer:
    """The optimiser ``fit`` steps: from a name, a ready optimiser, or a factory over parameter groups.

    - a name (``adamw`` | ``sgd``): :func:`make_optimizer` at ``lr`` and ``weight_decay``;
    - an optimiser (e.g. over discriminative param groups): used as it is; the loss's parameters, if it has
      any and they are missing, are added as a group at ``lr`` without weight decay;
    - a callable: called with :func:`param_groups` (named ``decay``/``no_decay``/``loss``), e.g.
      ``functools.partial(torch.optim.SGD, lr=0.1)``.
    """
    extra = list(loss.parameters()) if isinstance(loss, nn.Module) else []
    if isinstance(spec, str):
        return make_optimizer(model, spec, lr, weight_decay, device, extra)
    if isinstance(spec, torch.optim.Optimizer):
        owned = {id(p) for g in spec.param_groups for p in g["params"]}
        missing = [p for p in extra if id(p) not in owned]
        if missing:
            spec.add_param_group({"params": missing, "lr": lr, "weight_decay": 0.0, "name": "loss"})
        if not any(p.requires_grad for g in spec.param_groups for p in g["params"]):
            raise ValueError("the optimiser given to fit holds no trainable parameter (all frozen?)")
        return spec
    if callable(spec):
        opt = spec(param_groups(model, weight_decay, extra))
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    raise TypeError(f"optimizer must be a name {OPTIMIZERS}, a torch.optim.Optimizer or a factory over parameter "
                    f"groups, got {type(spec).__name__}")


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
