"""Loss weightings: how the per-task losses become the one number the optimiser minimises (chapter 11).

A weighting is a loss for ``fit``: ``weighting(outputs, batch)`` computes each task's mean cross-entropy over
its labelled samples (the rule of ``mmcourse.losses``) and returns the weighted total with the parts to log
(``loss/<task>``, ``acc/<task>``, ``weight/<task>``). Called with one dict of per-task losses,
``weighting(losses)`` returns the total alone (the maths, for tests and exercises). Three strategies:

- ``FixedWeighting``: constant weights (equal by default).
- ``UncertaintyWeighting``: homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018); a learned log-variance
  ``s_t`` per task, total ``sum_t exp(-s_t) L_t + s_t / 2``. Its ``s_t`` are parameters, which ``fit``
  optimises with the model.
- ``DynamicWeightAverage``: DWA (Liu, Johns & Davison, 2019); tasks whose loss falls slowly get more weight.
  Its per-epoch update is a callback hook (``on_epoch_end``), which ``fit`` calls because the loss has it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.batch import Batch
from mmcourse.losses import common_tasks, task_sums


def task_losses(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Mean cross-entropy per task that has both logits and targets (targets of -100 are skipped).

    A task whose targets in this batch are all -100 gives a zero loss (not NaN), so it adds nothing.
    """
    return {t: ce / n.clamp_min(1) for t, (ce, _c, n) in task_sums(outputs, targets).items()}


class LossWeighting(nn.Module):
    """Base class: ``forward(outputs, batch) -> (total, parts)`` or ``forward(losses) -> total``,
    ``weight_tensor()`` (device, no sync), ``weights()`` (floats, for display) and ``epoch_end()``."""

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("a loss weighting needs at least one task name")
        self.tasks = tuple(sorted(tasks))

    def _check(self, losses: Mapping[str, Tensor]) -> None:
        if set(losses) != set(self.tasks):
            raise KeyError(f"{type(self).__name__} weighs tasks {list(self.tasks)} but got losses for "
                           f"{sorted(losses)}")

    def weight_tensor(self, device: torch.device | None = None) -> Tensor:
        """The current weights ``[T]`` in ``self.tasks`` order."""
        raise NotImplementedError

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """The total of per-task losses."""
        self._check(losses)
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # [T]
        return (self.weight_tensor(stacked.device) * stacked).sum()

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch | None = None) -> Any:
        if batch is None:
            return self.combine(outputs)
        sums = task_sums(outputs, batch.targets)
        if set(sums) != set(self.tasks):
            raise KeyError(f"{type(self).__name__} weighs tasks {list(self.tasks)} but the model and data share "
                           f"tasks {common_tasks(outputs, batch.targets)}")
        total = self.combine({t: ce / n.clamp_min(1) for t, (ce, _c, n) in sums.items()})
        parts: dict[str, Any] = {}
        w = self.weight_tensor(total.device).detach()
        for i, t in enumerate(self.tasks):
            ce, correct, n = sums[t]
            parts[f"loss/{t}"], parts[f"acc/{t}"], parts[f"weight/{t}"] = (ce, n), (correct, n), w[i]
        return total, parts

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.weight_tensor().tolist()))

    def epoch_end(self) -> None:
        """Called once per epoch (DWA updates its weights here)."""

    def on_epoch_end(self, state: Any, row: Mapping[str, Any]) -> None:
        """fit's callback hook: the end of a training epoch."""
        self.epoch_end()


class FixedWeighting(LossWeighting):
    """``total = sum_t w_t L_t`` with constant ``w_t`` (1 for tasks not named in ``weights``)."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise KeyError(f"weights given for unknown tasks {unknown}; tasks are {list(self.tasks)}")
        negative = {t: w for t, w in weights.items() if w < 0}
        if negative:
            raise ValueError(f"task weights must be >= 0, got {negative}")
        self.fixed = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        self.register_buffer("w", torch.tensor([self.fixed[t] for t in self.tasks]))

    def weight_tensor(self, device: torch.device | None = None) -> Tensor:
        return self.w if device is None else self.w.to(device)


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic uncertainty weighting: ``total = sum_t exp(-s_t) L_t + s_t / 2`` with learned ``s_t``.

    ``s_t = log sigma_t^2``; a noisy or hard task learns a large ``sigma_t`` and so a small weight
    ``exp(-s_t)``, while the ``s_t / 2`` term stops every weight from collapsing to zero.
    """

    def __init__(self, tasks: Sequence[str], init_log_var: float = 0.0):
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))

    def weight_tensor(self, device: torch.device | None = None) -> Tensor:
        w = torch.exp(-self.log_var)
        return w if device is None else w.to(device)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # [T]
        return (torch.exp(-self.log_var) * stacked + 0.5 * self.log_var).sum()

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.exp(-self.log_var.detach()).tolist()))


class DynamicWeightAverage(LossWeighting):
    """Dynamic weight average: ``w_t = T * softmax_t(r_t / temperature)``, ``r_t = L_t(k-1) / L_t(k-2)``.

    ``L_t(k)`` is task ``t``'s mean training loss in epoch ``k``; the weights are 1 for the first two
    epochs (no ratio yet). The weights sum to the number of tasks. Losses are accumulated on the device
    (in training mode only) and read once per epoch in ``epoch_end``; the weights and the loss history are
    part of the state dict, so a resumed run continues with them.
    """

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0):
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.history: list[list[float]] = []  # mean loss per task for each finished epoch
        self.register_buffer("w", torch.ones(len(self.tasks)))
        self._sum: Tensor | None = None
        self._count = 0

    def weight_tensor(self, device: torch.device | None = None) -> Tensor:
        return self.w if device is None else self.w.to(device)

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # [T]
        if self.training:
            d = stacked.detach()
            self._sum = d if self._sum is None else self._sum + d
            self._count += 1
        return (self.w.to(stacked.device) * stacked).sum()

    @staticmethod
    def weights_from(prev: Sequence[float], prev2: Sequence[float], temperature: float) -> list[float]:
        """DWA weights from the last two epochs' mean losses."""
        r = torch.tensor([a / max(b, 1e-12) for a, b in zip(prev, prev2)], dtype=torch.float64)
        return (len(r) * torch.softmax(r / temperature, dim=0)).tolist()

    def epoch_end(self) -> None:
        if self._sum is None:
            return
        self.history.append((self._sum / self._count).tolist())  # one host read per epoch
        self._sum, self._count = None, 0
        if len(self.history) >= 2:
            new = self.weights_from(self.history[-1], self.history[-2], self.temperature)
            self.w.copy_(torch.tensor(new, dtype=self.w.dtype))

    def get_extra_state(self) -> dict[str, Any]:
        return {"history": [list(h) for h in self.history]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.history = [list(h) for h in state.get("history", [])]


WEIGHTINGS = {"fixed": FixedWeighting, "uncertainty": UncertaintyWeighting, "dwa": DynamicWeightAverage}


def make_weighting(name: str, tasks: Sequence[str], **kwargs: Any) -> LossWeighting:
    """Build a weighting by name: ``fixed``, ``uncertainty`` or ``dwa``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; choose one of {sorted(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks, **kwargs)
