"""Debugging recipes for training runs: the initial-loss check, overfitting one batch, the learning-rate range
test and gradient-norm monitoring (a callback for ``fit``).

Chapter 04 runs each recipe on the digits; later chapters use them when a run misbehaves. The loops here take
a ``step_loss`` function instead of data, so they work with any model and any batch format: it receives the
model (and the step number) and returns the scalar loss of one batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.engine.history import Callback, TrainState
from mmcourse.engine.minimal import plain_step

OptimizerFactory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]


def expected_initial_loss(num_classes: int) -> float:
    """The cross-entropy of a classifier that knows nothing yet: uniform probabilities give ``log C``."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return math.log(num_classes)


def check_initial_loss(loss: float, num_classes: int, tolerance: float = 0.25) -> float:
    """Return ``loss / log C``; raise when it is further than ``tolerance`` (relative) from 1.

    A freshly initialised classifier should start near ``log C``. Far above means confident wrong logits
    (a last layer initialised too large, unnormalised inputs); far below means the labels leak into the inputs
    or the loss is not what you think.

    Raises:
        ValueError: the ratio is outside ``[1 - tolerance, 1 + tolerance]`` (the message says which way).
    """
    expected = expected_initial_loss(num_classes)
    ratio = float(loss) / expected
    if not math.isfinite(ratio) or abs(ratio - 1) > tolerance:
        hint = ("too high: the initial logits are large (scale down the last layer, normalise the inputs)"
                if ratio > 1 else "too low: the task looks solved before training (leaked labels? wrong loss?)")
        raise ValueError(f"initial loss {float(loss):.3f} is {ratio:.2f}x log({num_classes}) = {expected:.3f}, "
                         f"{hint}")
    return ratio


def simple_optimizer(name: str | OptimizerFactory, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """``adam``, ``adamw`` or ``sgd`` (momentum 0.9) at learning rate ``lr``, or ``name(params, lr)``."""
    if callable(name):
        return name(params, lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"optimizer={name!r}; use 'adam', 'adamw', 'sgd' or a function (params, lr) -> optimizer")


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params


def overfit_one_batch(model: nn.Module, step_loss: Callable[[nn.Module], Tensor], *, steps: int = 200,
                      lr: float = 1e-3, optimizer: str | OptimizerFactory = "adam") -> list[float]:
    """Train on one fixed batch for ``steps`` steps and return the loss of every step.

    A model and loss that are wired correctly drive the loss of a single small batch towards zero; when they
    cannot, the bug is in the model, the loss or the labels, not in the amount of data.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    opt = simple_optimizer(optimizer, _trainable(model), lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = step_loss(model)
        plain_step(opt, loss)
        losses.append(loss.detach())
    return torch.stack(losses).tolist()  # one host sync at the end


@dataclass
class LRRangeResult:
    """The learning-rate range test's record: ``lrs[i]`` was used at step ``i``, which had loss ``losses[i]``
    (``smoothed``: an exponential moving average). ``suggestion`` is a tenth of the learning rate with the
    lowest smoothed loss; ``diverged_at`` is the learning rate that ended the test, or None."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def min_loss_lr(self) -> float:
        """The learning rate at the lowest smoothed loss."""
        return self.lrs[min(range(len(self.smoothed)), key=self.smoothed.__getitem__)]

    @property
    def suggestion(self) -> float:
        return self.min_loss_lr / 10

    def plot(self, ax: Any = None, label: str | None = None, color: Any = None) -> Any:
        """Smoothed loss against the learning rate (log axis), with the suggestion marked. Returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3.4))[1]
        ax.plot(self.lrs, self.smoothed, color=color, label=label or "smoothed loss")
        ax.axvline(self.suggestion, color=color or "0.4", linestyle=":", linewidth=1)
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
        return ax


def lr_range_test(model: nn.Module, step_loss: Callable[[nn.Module, int], Tensor], *, lr_min: float = 1e-5,
                  lr_max: float = 1.0, steps: int = 100, optimizer: str | OptimizerFactory = "adamw",
                  smoothing: float = 0.9, diverge: float = 4.0, restore: bool = True) -> LRRangeResult:
    """Smith's learning-rate range test: train while the learning rate grows exponentially from ``lr_min`` to
    ``lr_max`` over ``steps`` steps, and record the loss of every step.

    The loss first barely moves (too small), then falls fastest, then blows up (too large); a good constant
    learning rate sits a little below the bottom of the curve, and a one-cycle peak near it.

    Args:
        step_loss: ``step_loss(model, i)`` returns the loss of the ``i``-th training batch (a scalar tensor).
        smoothing: the EMA factor of the smoothed curve (bias-corrected, as in Adam).
        diverge: stop once the smoothed loss exceeds ``diverge`` times its lowest value (or is not finite).
        restore: put the weights and buffers back afterwards (the test is a measurement, not training).
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got lr_min={lr_min}, lr_max={lr_max}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    saved = copy.deepcopy(model.state_dict()) if restore else None
    opt = simple_optimizer(optimizer, _trainable(model), lr_min)
    model.train()
    lrs, losses, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, None
    try:
        for i in range(steps):
            lr = lr_min * (lr_max / lr_min) ** (i / (steps - 1))
            for group in opt.param_groups:
                group["lr"] = lr
            loss = step_loss(model, i)
            plain_step(opt, loss)
            value = float(loss.detach())  # the test decides after every step, so it reads the loss now
            avg = smoothing * avg + (1 - smoothing) * value
            smooth = avg / (1 - smoothing ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            if not math.isfinite(smooth) or smooth > diverge * best:
                diverged = lr
                break
    finally:
        if saved is not None:
            model.load_state_dict(saved)
    return LRRangeResult(lrs, losses, smoothed, diverged)


def global_grad_norm(params: nn.Module | Iterable[nn.Parameter], norm_type: float = 2.0) -> Tensor:
    """The norm of all gradients together, as ``clip_grad_norm_`` computes it (a device tensor; no sync).

    Parameters without a gradient are skipped; with none at all the result is 0.
    """
    ps = params.parameters() if isinstance(params, nn.Module) else params
    grads = [p.grad.detach() for p in ps if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: one fused kernel per device and dtype
        return torch.nn.utils.get_total_norm(grads, norm_type)
    per = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    return torch.linalg.vector_norm(per, norm_type)


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """``{parameter name: gradient norm}`` for every parameter that has a gradient (reads them to the host)."""
    named = [(n, p.grad.detach()) for n, p in model.named_parameters() if p.grad is not None]
    if not named:
        return {}
    values = torch.stack([torch.linalg.vector_norm(g) for _, g in named]).tolist()
    return {n: v for (n, _), v in zip(named, values)}


class GradNormMonitor(Callback):
    """Record the global gradient norm after every training step of ``fit`` (or of your own loop: call
    :meth:`record` after ``backward``).

    The norms stay on the device during the epoch and are read once at its end, so monitoring adds no host
    synchronisation to the step. ``norms`` holds every step's value, ``epochs`` one summary per epoch. Under
    fp16 loss scaling the norms are of the scaled gradients.
    """

    def __init__(self, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.norms: list[float] = []
        self.steps: list[int] = []
        self.epochs: list[dict[str, float]] = []
        self._pending: list[Tensor] = []
        self._pending_steps: list[int] = []

    def record(self, model: nn.Module, step: int | None = None) -> None:
        """Store the current gradient norm of ``model`` (as a device tensor)."""
        self._pending.append(global_grad_norm(model))
        self._pending_steps.append(len(self.steps) + len(self._pending_steps) if step is None else step)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            self.record(state.model, state.step)

    def flush(self) -> list[float]:
        """Read the pending norms to the host (one sync) and return them."""
        if not self._pending:
            return []
        values = torch.stack(self._pending).tolist()
        self.norms.extend(values)
        self.steps.extend(self._pending_steps)
        self._pending, self._pending_steps = [], []
        return values

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        values = self.flush()
        if values:
            self.epochs.append({"epoch": float(row.get("epoch", len(self.epochs) + 1)),
                                "mean": sum(values) / len(values), "max": max(values)})

    def on_train_end(self, state: TrainState) -> None:
        self.flush()
