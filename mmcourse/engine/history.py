"""What ``fit`` returns and how it can be steered: ``History`` (per-epoch rows, plots) and callbacks
(``Callback``, ``EarlyStopping``) called at the start and end of every epoch and after every step, with the
helpers that keep their state in checkpoints.

Every training chapter plots ``history.plot()``; chapter 5 uses ``EarlyStopping``. Callbacks are duck-typed:
any object with some of the hooks works, so packages below the engine (``transfer``'s ``FreezeBatchNorm`` and
``GradualUnfreezing``, ``multitask``'s ``DynamicWeightAverage``) define theirs without importing it.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmcourse.palette import PALETTE

HOOKS = ("on_epoch_begin", "on_step_end", "on_epoch_end", "on_train_end")


class History:
    """Per-epoch rows of plain numbers: ``epoch, train_loss, train_acc/<task>, val_loss, val_acc/<task>,
    val_acc, lr, epoch_time_s, samples_per_s``."""

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        self.rows: list[dict[str, Any]] = list(rows or [])

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    @property
    def last(self) -> dict[str, Any]:
        """The most recent epoch's row (empty dict before the first epoch)."""
        return self.rows[-1] if self.rows else {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> list[Any]:
        """One column, e.g. ``history["val_acc"]`` (None where an epoch lacks it)."""
        if not any(key in r for r in self.rows):
            known = sorted({k for r in self.rows for k in r})
            raise KeyError(f"history has no {key!r}; it has {known}")
        return [r.get(key) for r in self.rows]

    def best(self, key: str = "val_acc", mode: str = "max") -> dict[str, Any]:
        """The row with the best ``key``."""
        vals = [(r[key], i) for i, r in enumerate(self.rows) if r.get(key) is not None]
        if not vals:
            raise KeyError(f"history has no {key!r}")
        return self.rows[(max if mode == "max" else min)(vals)[1]]

    def __repr__(self) -> str:
        return f"History({len(self.rows)} epochs, last={self.last})"

    def plot(self, axes: Any = None):
        """Loss (left) and accuracy (right) per epoch; train solid, validation dashed. Returns the figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        else:
            fig = axes[0].figure
        epochs = [r["epoch"] for r in self.rows]
        keys = sorted({k for r in self.rows for k in r})
        loss_keys = [k for k in ("train_loss", "val_loss") if k in keys]
        acc_keys = [k for k in keys if k.startswith(("train_acc", "val_acc"))]
        for ax, group, ylabel in ((axes[0], loss_keys, "loss (sum over tasks)"), (axes[1], acc_keys, "accuracy")):
            for i, k in enumerate(group):
                y = [r.get(k, math.nan) for r in self.rows]
                style = "--" if k.startswith("val") else "-"
                colour = PALETTE[i % len(PALETTE)]
                ax.plot(epochs, y, style, marker="o", color=colour, label=k)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            if group:
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig


@dataclass
class TrainState:
    """What callbacks see: the model, optimiser, counters, the current step's loss (a device tensor: reading
    it with ``.item()`` forces a host sync) and a ``stop`` flag that ends training after this epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    epoch: int = 0
    step: int = 0
    loss: torch.Tensor | None = None
    stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class: override any of the hooks (any object with some of these methods works too)."""

    def on_epoch_begin(self, state: TrainState) -> None:  # noqa: B027 — optional hook
        pass

    def on_step_end(self, state: TrainState) -> None:  # noqa: B027 — optional hook
        pass

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:  # noqa: B027 — optional hook
        pass

    def on_train_end(self, state: TrainState) -> None:  # noqa: B027 — optional hook
        pass

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for a resumed run to behave as if it never stopped (plain values and
        tensors only: checkpoints load with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 — optional hook
        """Take back what :meth:`state_dict` returned (called by ``fit(..., resume=path)``)."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode`` is ``min``/``max`` (``auto``: min for losses, max otherwise). With ``restore_best`` the model's
    weights are set back to the best epoch's when training ends.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True):
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}; use 'min', 'max' or 'auto'")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if self.monitor not in row:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r} but the epoch row has {sorted(row)}; "
                           "pass val data to fit or monitor a train_* key")
        value = float(row[self.monitor])
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, row["epoch"], 0
            if self.restore_best:
                from mmcourse.engine.speed import unwrap

                self._best_state = copy.deepcopy(unwrap(state.model).state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self._best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], int(state["wait"])
        self._best_state = state["best_state"]

    def on_train_end(self, state: TrainState) -> None:
        if self.restore_best and self._best_state is not None:
            from mmcourse.engine.speed import unwrap

            unwrap(state.model).load_state_dict(self._best_state)


def callback_states(callbacks: Iterable[Any]) -> list[dict[str, Any]]:
    """``[{"type": class name, "state": cb.state_dict()}]`` for every callback that has a ``state_dict``."""
    return [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in callbacks if hasattr(cb, "state_dict")]


def restore_callback_states(callbacks: Iterable[Any], saved: list[dict[str, Any]], path: Any) -> None:
    """Give each stateful callback the state saved for the callback of the same type, in the same order."""
    stateful = [cb for cb in callbacks if hasattr(cb, "load_state_dict")]
    for i, cb in enumerate(stateful):
        if i < len(saved) and saved[i]["type"] == type(cb).__name__:
            cb.load_state_dict(saved[i]["state"])
        elif getattr(cb, "state_dict", dict)():  # a callback with nothing to keep needs no warning
            warnings.warn(f"{path} holds no state for callback {type(cb).__name__} (saved: "
                          f"{[s['type'] for s in saved]}); it starts afresh", stacklevel=4)
