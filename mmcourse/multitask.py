"""Multi-task learning: one shared trunk, one head per task, and how to weigh the task losses.

Chapter 10 uses everything here. A multi-task model is the ordinary ``MultimodalModel`` with several heads
(hard parameter sharing); ``task_heads`` builds them. A *loss weighting* turns the per-task losses into the
one number the optimiser minimises, with a common interface:

``weighting(losses) -> total``, ``weighting.weights() -> {task: float}`` (for logging) and
``weighting.epoch_end()`` (called once per epoch by the training loop). Three strategies:

- ``FixedWeighting``: constant weights (equal by default).
- ``UncertaintyWeighting``: homoscedastic uncertainty (Kendall, Gal & Cipolla, 2018); a learned log-variance
  ``s_t`` per task, total ``sum_t exp(-s_t) L_t + s_t / 2``.
- ``DynamicWeightAverage``: DWA (Liu, Johns & Davison, 2019); tasks whose loss falls slowly get more weight.

``fit_multitask`` is a short training loop (engine pieces: batches, optimiser, schedule, evaluation) that
calls a weighting and records the weights per epoch in the ``History`` (``weight/<task>``), which
``plot_task_weights`` draws.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.engine.batches import BatchSource
from mmcourse.engine.evaluation import run_evaluation
from mmcourse.engine.history import History
from mmcourse.engine.optim import make_optimizer, make_schedule
from mmcourse.engine.speed import autocast_context, resolve_amp
from mmcourse.fusion.basic import ConcatFusion, IdentityFusion
from mmcourse.models import MultimodalModel
from mmcourse.palette import PALETTE

IGNORE = -100  # a target of -100 means "no label for this task" (cross-entropy skips it)


def task_heads(in_dim: int, num_classes: Mapping[str, int], hidden: int | None = None,
               dropout: float = 0.0) -> dict[str, nn.Module]:
    """One head per task: a linear layer, or ``Linear → ReLU → Dropout → Linear`` when ``hidden`` is given."""
    if not num_classes:
        raise ValueError("task_heads needs at least one task, e.g. {'shape': 10}")
    heads: dict[str, nn.Module] = {}
    for task, c in num_classes.items():
        if int(c) < 2:
            raise ValueError(f"task {task!r} needs at least 2 classes, got {c}")
        heads[task] = (nn.Linear(in_dim, c) if hidden is None else
                       nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, c)))
    return heads


def shared_trunk_model(encoders: Mapping[str, nn.Module], num_classes: Mapping[str, int],
                       hidden: int | None = None) -> MultimodalModel:
    """Hard parameter sharing: encoders (one per modality) → fusion → one head per task.

    One encoder and one task is a unimodal single-task model; several encoders make it multimodal; several
    tasks make it multi-task; both at once is the same class. Fusion is identity for one modality and
    concatenation otherwise.
    """
    dims = {m: int(e.out_dim) for m, e in encoders.items()}
    fusion = IdentityFusion() if len(dims) == 1 else ConcatFusion(dims)
    return MultimodalModel(encoders, fusion, task_heads(sum(dims.values()), num_classes, hidden))


def task_losses(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Mean cross-entropy per task that has both logits and targets (targets of -100 are skipped).

    A task whose targets in this batch are all -100 gives a zero loss (not NaN), so it adds nothing.
    """
    tasks = sorted(set(outputs) & set(targets))
    if not tasks:
        raise ValueError(f"the model predicts {sorted(outputs)} but the data has targets {sorted(targets)}; "
                         "at least one task must be in both")
    out = {}
    for t in tasks:
        y = targets[t]
        total = F.cross_entropy(outputs[t].float(), y, ignore_index=IGNORE, reduction="sum")
        out[t] = total / (y != IGNORE).sum().clamp_min(1)
    return out


class LossWeighting(nn.Module):
    """Base class: ``forward(losses) -> total``, ``weights()``, ``epoch_end()``."""

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("a loss weighting needs at least one task name")
        self.tasks = tuple(sorted(tasks))

    def _check(self, losses: Mapping[str, Tensor]) -> None:
        if set(losses) != set(self.tasks):
            raise KeyError(f"{type(self).__name__} weighs tasks {list(self.tasks)} but got losses for "
                           f"{sorted(losses)}")

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def epoch_end(self) -> None:
        """Called by the training loop after every epoch (DWA updates its weights here)."""


class FixedWeighting(LossWeighting):
    """``total = sum_t w_t L_t`` with constant ``w_t`` (1 for tasks not named in ``weights``)."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise KeyError(f"weights given for unknown tasks {unknown}; tasks are {list(self.tasks)}")
        self.fixed = {t: float(weights.get(t, 1.0)) for t in self.tasks}

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        return sum(self.fixed[t] * losses[t] for t in self.tasks)

    def weights(self) -> dict[str, float]:
        return dict(self.fixed)


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic uncertainty weighting: ``total = sum_t exp(-s_t) L_t + s_t / 2`` with learned ``s_t``.

    ``s_t = log sigma_t^2``; a noisy or hard task learns a large ``sigma_t`` and so a small weight
    ``exp(-s_t)``, while the ``s_t / 2`` term stops every weight from collapsing to zero. The ``s_t`` are
    parameters: train them with the model (``fit_multitask`` adds them to the optimiser).
    """

    def __init__(self, tasks: Sequence[str], init_log_var: float = 0.0):
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.full((len(self.tasks),), float(init_log_var)))

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # [T]
        return (torch.exp(-self.log_var) * stacked + 0.5 * self.log_var).sum()

    def weights(self) -> dict[str, float]:
        w = torch.exp(-self.log_var.detach()).tolist()
        return dict(zip(self.tasks, w))


class DynamicWeightAverage(LossWeighting):
    """Dynamic weight average: ``w_t = T * softmax_t(r_t / temperature)``, ``r_t = L_t(k-1) / L_t(k-2)``.

    ``L_t(k)`` is task ``t``'s mean training loss in epoch ``k``; the weights are 1 for the first two
    epochs (no ratio yet). The weights sum to the number of tasks. Losses are accumulated on the device
    and read once per epoch in ``epoch_end``.
    """

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0):
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.history: list[list[float]] = []  # mean loss per task for each finished epoch
        self._w = [1.0] * len(self.tasks)
        self._sum: Tensor | None = None
        self._count = 0

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        self._check(losses)
        stacked = torch.stack([losses[t].float() for t in self.tasks])  # [T]
        if self.training:
            d = stacked.detach()
            self._sum = d if self._sum is None else self._sum + d
            self._count += 1
        w = torch.tensor(self._w, device=stacked.device, dtype=stacked.dtype)
        return (w * stacked).sum()

    @staticmethod
    def weights_from(prev: Sequence[float], prev2: Sequence[float], temperature: float) -> list[float]:
        """DWA weights from the last two epochs' mean losses."""
        r = torch.tensor([a / max(b, 1e-12) for a, b in zip(prev, prev2)], dtype=torch.float64)
        return (len(r) * torch.softmax(r / temperature, dim=0)).tolist()

    def epoch_end(self) -> None:
        if self._sum is None:
            return
        self.history.append((self._sum / self._count).tolist())
        self._sum, self._count = None, 0
        if len(self.history) >= 2:
            self._w = self.weights_from(self.history[-1], self.history[-2], self.temperature)

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self._w))


WEIGHTINGS = {"fixed": FixedWeighting, "uncertainty": UncertaintyWeighting, "dwa": DynamicWeightAverage}


def make_weighting(name: str, tasks: Sequence[str], **kwargs: Any) -> LossWeighting:
    """Build a weighting by name: ``fixed``, ``uncertainty`` or ``dwa``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; choose one of {sorted(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks, **kwargs)


def fit_multitask(model: nn.Module, train: object, val: object | None = None, *, epochs: int,
                  weighting: LossWeighting | str | None = None, lr: float = 1e-3, batch_size: int = 128,
                  weight_decay: float = 0.0, optimizer: torch.optim.Optimizer | None = None,
                  schedule: str = "cosine", device: torch.device | str | None = None, seed: int = 0,
                  freeze_batchnorm: bool = False, weighting_lr: float | None = None,
                  on_epoch_end: Iterable[Callable[[int, nn.Module], None]] = ()) -> History:
    """Train ``model`` on the weighted sum of its task losses; return a ``History``.

    Each row holds ``epoch``, ``train_loss`` (weighted total), ``train_loss/<task>``, ``weight/<task>``
    (the weights used in that epoch), ``lr`` and, with ``val``, ``val_loss``, ``val_acc/<task>``, ``val_acc``.

    Args:
        weighting: a ``LossWeighting``, a name from ``WEIGHTINGS``, or None (equal fixed weights).
        optimizer: a ready optimiser (e.g. with discriminative param groups); default AdamW over the
            model's trainable parameters and the weighting's parameters.
        weighting_lr: learning rate of a weighting's own parameters (uncertainty weighting's log-variances);
            default ``lr``. A larger rate lets the weights settle within a short run.
        freeze_batchnorm: keep every batch-norm layer in eval mode (pretrained statistics), as is wise when
            fine-tuning on a handful of samples.
        on_epoch_end: functions ``f(epoch, model)`` called after each epoch (e.g. gradual unfreezing).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    source = BatchSource(train, device)
    val_source = BatchSource(val, device) if val is not None else None
    tasks = _tasks_of(model, source)
    if weighting is None or isinstance(weighting, str):
        weighting = make_weighting(weighting or "fixed", tasks)
    weighting.to(device)
    if optimizer is None:
        optimizer = make_optimizer(model, "adamw", lr, weight_decay, device)
        extra = [p for p in weighting.parameters() if p.requires_grad]
        if extra:  # learned loss weights: their own rate, no weight decay
            optimizer.add_param_group({"params": extra, "lr": weighting_lr or lr, "weight_decay": 0.0})
    steps = (source.num_batches(batch_size, drop_last=False) or 1) * epochs
    sched = make_schedule(optimizer, schedule, steps, 0.0, lr)
    amp_dtype, _ = resolve_amp("auto", device)
    history = History()
    for epoch in range(1, epochs + 1):
        model.train()
        if freeze_batchnorm:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        weighting.train()
        used = weighting.weights()  # the weights this epoch trains with
        start = time.perf_counter()
        sums: dict[str, Tensor] = {}
        total_sum, n_steps = torch.zeros((), device=device), 0
        for batch, _ in source.epoch(batch_size, shuffle=True, seed=seed * 1000 + epoch):
            with autocast_context(device, amp_dtype):
                out = model(batch.inputs, batch.present)
            losses = task_losses(out, batch.targets)
            total = weighting(losses)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            sched.step()
            total_sum += total.detach()
            for t, v in losses.items():
                sums[t] = sums[t] + v.detach() if t in sums else v.detach().clone()
            n_steps += 1
        weighting.epoch_end()
        row: dict[str, Any] = {"epoch": epoch, "train_loss": total_sum.item() / max(n_steps, 1)}
        row.update({f"train_loss/{t}": v.item() / max(n_steps, 1) for t, v in sums.items()})
        row.update({f"weight/{t}": w for t, w in used.items()})
        row["lr"] = optimizer.param_groups[0]["lr"]
        if val_source is not None:
            ev = run_evaluation(model, val_source, batch_size=max(batch_size, 512), amp_dtype=amp_dtype)
            row.update({("val_" + k if k.startswith("acc") else "val_loss"): v for k, v in ev.items()})
        row["epoch_time_s"] = time.perf_counter() - start
        history.append(row)
        for f in on_epoch_end:
            f(epoch, model)
    return history


def _tasks_of(model: nn.Module, source: BatchSource) -> list[str]:
    heads = getattr(model, "heads", None)
    names = set(heads.keys()) if isinstance(heads, nn.ModuleDict) else None
    targets = set(source.targets) if source.kind == "tensors" else None
    if names is not None and targets is not None:
        both = sorted(names & targets)
        if not both:
            raise ValueError(f"the model has heads {sorted(names)} but the data has targets {sorted(targets)}")
        return both
    if names is not None:
        return sorted(names)
    if targets is not None:
        return sorted(targets)
    raise ValueError("cannot tell the tasks: give the model a .heads ModuleDict or pass a weighting")


def plot_task_weights(history: History, ax: Any = None):
    """Plot ``weight/<task>`` per epoch (one Okabe–Ito colour per task). Returns the axes."""
    import matplotlib.pyplot as plt

    keys = sorted({k for r in history.rows for k in r if k.startswith("weight/")})
    if not keys:
        raise KeyError("history has no weight/<task> columns; train with fit_multitask")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [r["epoch"] for r in history.rows]
    for i, k in enumerate(keys):
        ax.plot(epochs, [r.get(k, math.nan) for r in history.rows], marker="o", color=PALETTE[i % len(PALETTE)],
                label=k.split("/", 1)[1])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss weight")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
