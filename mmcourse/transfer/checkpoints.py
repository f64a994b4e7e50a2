"""Loading a pretrained state dict into a model that is not quite the same: a clear report of what matched.

Chapter 12 moves an encoder trained on one task into a model with new heads (parameter transfer). Keys the
model has but the checkpoint lacks are *missing*, keys only the checkpoint has are *unexpected*, and keys in
both whose shapes differ are *mismatched* (skipped, not loaded). ``torch``'s own ``load_state_dict`` stops at
the first shape mismatch; this reports everything at once and refuses a checkpoint that loads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn


@dataclass
class LoadReport:
    """What ``load_pretrained`` did: loaded, missing, unexpected and shape-mismatched keys."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every key matched (nothing missing, unexpected or mismatched)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f", … ({len(keys)} in all)" if len(keys) > 6 else "")

        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"missing (in the model, not in the checkpoint; left as initialised): {few(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected (in the checkpoint, not in the model; ignored): {few(self.unexpected)}")
        for k, (want, got) in list(self.mismatched.items())[:6]:
            lines.append(f"shape mismatch for {k}: model {list(want)}, checkpoint {list(got)} (not loaded)")
        return "\n".join(lines)


def _as_state_dict(source: Mapping[str, Tensor] | nn.Module | str | os.PathLike) -> dict[str, Tensor]:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 — a truncated or foreign file: say so plainly
            raise ValueError(f"{path} is not a readable torch checkpoint ({type(e).__name__}: {e})") from None
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            obj = obj["model"]  # an engine checkpoint: the model's state dict is under "model"
        source = obj
    if not isinstance(source, Mapping) or not all(isinstance(v, Tensor) for v in source.values()):
        raise TypeError("expected a state dict (a mapping of names to tensors), a module or a checkpoint path")
    return dict(source)


def load_pretrained(model: nn.Module, source: Mapping[str, Tensor] | nn.Module | str | os.PathLike, *,
                    prefix: str = "", strip_prefix: str = "", strict: bool = False) -> LoadReport:
    """Copy matching tensors from ``source`` into ``model``; return a :class:`LoadReport`.

    Args:
        source: a state dict, a module, or a path to a file saved with ``torch.save`` (an engine checkpoint
            with a ``"model"`` entry works too).
        prefix: put in front of every checkpoint key (an encoder's weights into ``encoders.image.``).
        strip_prefix: removed from the front of checkpoint keys that have it (others are kept as they are).
        strict: raise unless every key matches.

    Raises:
        ValueError: nothing at all could be loaded (a checkpoint of a different architecture), or ``strict``
            and some key did not match. The message lists the missing and unexpected keys.
    """
    state = _as_state_dict(source)
    if strip_prefix:
        state = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in state.items()}
    state = {prefix + k: v for k, v in state.items()}
    own = model.state_dict()
    report = LoadReport()
    to_load = {}
    for k, v in state.items():
        if k not in own:
            report.unexpected.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            report.mismatched[k] = (tuple(own[k].shape), tuple(v.shape))
        else:
            to_load[k] = v
            report.loaded.append(k)
    report.missing = [k for k in own if k not in state]
    if not to_load:
        raise ValueError(f"the checkpoint does not fit {type(model).__name__} (a different architecture?): "
                         f"no tensor could be loaded.\n{report}")
    if strict and not report.ok:
        raise ValueError(f"strict loading into {type(model).__name__} failed:\n{report}")
    model.load_state_dict(to_load, strict=False)
    return report
