"""``FitConfig``: every setting of ``fit`` as one frozen dataclass of plain values (chapter 13).

Plain values (numbers, strings, booleans, small dicts) so that a checkpoint stores the config and loads with
``weights_only=True``. ``fit(model, data, epochs=4, lr=1e-3)`` builds one from keywords; ``FitConfig.with_``
changes a few fields of an existing one. Every field is checked when the config is made, so a bad value fails
before any data moves, with a message naming the field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mmcourse.engine.optim import SCHEDULES
from mmcourse.engine.speed import AMP_CHOICES
from mmcourse.losses import check_task_weights

NONFINITE = ("raise", "skip")


def _number(name: str, value: Any, *, positive: bool = False, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}; use one of {choices}")


@dataclass(frozen=True)
class FitConfig:
    """How ``fit`` trains.

    Attributes:
        epochs: total epochs (a resumed run continues up to this number).
        lr, weight_decay: the base learning rate and decoupled weight decay (never on biases/norm scales).
        batch_size: the global batch size (split across ranks under torchrun).
        schedule, warmup: ``cosine`` | ``onecycle`` | ``constant``, stepped every batch; ``warmup`` < 1 is a
            fraction of all steps, >= 1 a number of steps.
        clip_grad: clip the global gradient norm to this value (> 0), or None.
        task_weights: ``{task: weight >= 0}`` for the default per-task cross-entropy.
        amp: ``auto`` (bf16 on GPUs that have it, fp16 with a GradScaler on older GPUs, off on CPU) | bf16 |
            fp16 | off. ``fp16`` on a CPU runs fp32 maths with a GradScaler (loss scaling only).
        channels_last: ``auto`` (on for CUDA) | True | False.
        compile: False | True | a backend name (``"aot_eager"``) | a dict of ``torch.compile`` arguments.
        drop_last: drop the last incomplete batch (contrastive losses want full batches; on with compile).
        seed: seeds the data order and the random number generators.
        modality_dropout: probability of dropping each modality of each training sample.
        progress: show tqdm progress bars.
        checkpoint: a path written atomically at the end of every epoch; resume: a checkpoint to continue.
        device: ``None`` = ``pick_device()`` (under torchrun the rank's GPU), or ``cpu``/``cuda[:N]``/``mps``.
        nonfinite: ``raise`` (stop at the end of the epoch with the first NaN/inf loss or gradient, before it
            is checkpointed) | ``skip`` (skip such steps, counted in the history as ``skipped_steps``; this
            costs one host synchronisation per step).
        find_unused: let DDP look for parameters without a gradient every step (heads without targets,
            encoders without inputs); False is faster when every parameter always gets one.
        eval_batch_size: batch size of the per-epoch evaluation (default ``max(batch_size, 512)``).
    """

    epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: float = 0.0
    clip_grad: float | None = None
    task_weights: dict[str, float] = field(default_factory=dict)
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool | str | dict[str, Any] = False
    drop_last: bool = False
    seed: int = 0
    modality_dropout: float = 0.0
    progress: bool = True
    checkpoint: str | None = None
    resume: str | None = None
    device: str | None = None
    nonfinite: str = "raise"
    find_unused: bool = True
    eval_batch_size: int | None = None

    def __post_init__(self) -> None:
        _int("epochs", self.epochs, 1)
        _number("lr", self.lr, positive=True)
        _int("batch_size", self.batch_size, 1)
        _number("weight_decay", self.weight_decay, minimum=0.0)
        _choice("schedule", self.schedule, SCHEDULES)
        _number("warmup", self.warmup, minimum=0.0)
        if self.clip_grad is not None:
            _number("clip_grad", self.clip_grad)
            if self.clip_grad <= 0:
                raise ValueError(f"clip_grad must be > 0 (the largest gradient norm allowed) or None, got "
                                 f"{self.clip_grad}")
        object.__setattr__(self, "task_weights", check_task_weights(self.task_weights))
        amp = "auto" if self.amp is True else "off" if self.amp in (False, None) else self.amp
        _choice("amp", amp, AMP_CHOICES)
        object.__setattr__(self, "amp", amp)
        if self.channels_last != "auto" and not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last={self.channels_last!r}; use True, False or 'auto'")
        if not isinstance(self.compile, (bool, str, Mapping)):
            raise ValueError(f"compile={self.compile!r}; use False, True, a backend name or a dict of "
                             "torch.compile arguments")
        if isinstance(self.compile, Mapping):
            object.__setattr__(self, "compile", dict(self.compile))
        _int("seed", self.seed, 0)
        _number("modality_dropout", self.modality_dropout, minimum=0.0)
        if self.modality_dropout >= 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        for name in ("checkpoint", "resume"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)):
                    raise TypeError(f"{name} must be a path, got {value!r}")
                object.__setattr__(self, name, os.fspath(value))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))
        _choice("nonfinite", self.nonfinite, NONFINITE)
        if self.eval_batch_size is not None:
            _int("eval_batch_size", self.eval_batch_size, 1)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_(self, **changes: Any) -> FitConfig:
        """A copy with some fields changed; an unknown name raises ``TypeError`` listing the valid ones."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise TypeError(f"unknown fit setting(s) {unknown}; valid FitConfig fields: {self.field_names()}")
        return FitConfig(**{**self.to_dict(), **changes})

    @classmethod
    def make(cls, config: FitConfig | None, overrides: Mapping[str, Any]) -> FitConfig:
        """The config ``fit`` runs with: ``config`` (or the defaults) with ``overrides`` applied."""
        if config is not None and not isinstance(config, FitConfig):
            raise TypeError(f"config must be a FitConfig, got {type(config).__name__}; write "
                            "fit(..., config=FitConfig(epochs=...)) or pass the settings as keywords")
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"fit() got unknown setting(s) {unknown}; valid FitConfig fields: {cls.field_names()}")
        if config is None:
            if "epochs" not in overrides:
                raise TypeError("fit() needs epochs=... (or config=FitConfig(epochs=...))")
            return cls(**overrides)
        return config.with_(**overrides) if overrides else config

    def to_dict(self) -> dict[str, Any]:
        """Plain values (what a checkpoint stores)."""
        return asdict(self)

    @property
    def evaluation_batch_size(self) -> int:
        return self.eval_batch_size or max(self.batch_size, 512)
