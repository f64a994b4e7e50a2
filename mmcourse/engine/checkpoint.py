"""Checkpoints: model, optimiser, scheduler, loss scaler, RNG states, epoch/step, config and history, saved
atomically and loaded with ``weights_only=True``.

Chapter 13 shows why each piece is there: resuming from a checkpoint continues training exactly as if it
had never stopped (the tests check it bit for bit on a CPU), and an interrupted save never corrupts the file:
its temp file is swept by the next save or load once its writer is dead (``mmcourse.io.sweep_stale``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmcourse.engine.speed import unwrap
from mmcourse.io import atomic_torch_save, sweep_stale

FORMAT = "mmcourse-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model", "epoch", "step")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, foreign or does not fit the model it is loaded into."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as plain values and tensors (``weights_only``-safe)."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, *, epoch: int = 0, step: int = 0, config: Mapping[str, Any] | None = None,
                    history: list[dict[str, Any]] | None = None, scaler: Any = None,
                    rng: list[dict[str, Any]] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename): readers see the old file or the new one, never half.

    Args:
        path: where to write.
        model: its ``state_dict`` is saved (compile/DDP wrappers are unwrapped).
        optimizer, scheduler, scaler: optional training state.
        epoch: completed epochs; step: optimiser steps taken.
        config: plain values (numbers, strings, lists, dicts) describing the run.
        history: per-epoch rows of plain values.
        rng: RNG states per rank (default: this process's, from :func:`rng_state`).
        extra: more plain values to keep.
    """
    ckpt = {
        "format": FORMAT, "version": VERSION,
        "model": unwrap(model).state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None or not scaler.is_enabled() else scaler.state_dict(),
        "rng": rng if rng is not None else [rng_state()],
        "epoch": int(epoch), "step": int(step),
        "config": dict(config or {}), "history": list(history or []), "extra": dict(extra or {}),
    }
    return atomic_torch_save(ckpt, path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint file (``weights_only=True``), raising :class:`CheckpointError`."""
    path = Path(path)
    sweep_stale(path)  # temp files of saves that were killed midway
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    size = path.stat().st_size
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint {path} cannot be read: permission denied (its mode is "
                              f"{path.stat().st_mode & 0o777:o}); fix its permissions")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many kinds (RuntimeError, UnpicklingError, IndexError, EOFError...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} ({size} bytes) cannot be read: it is truncated, corrupt or not "
                              f"a torch file ({type(e).__name__}: {first})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not an mmcourse checkpoint: expected a dict with format={FORMAT!r} "
                              f"written by mmcourse.engine.save_checkpoint, found {found}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; was it written by another tool?")
    if ckpt["version"] > VERSION:
        raise CheckpointError(f"checkpoint {path} has version {ckpt['version']}, newer than this mmcourse "
                              f"({VERSION}); upgrade mmcourse")
    return ckpt


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, *, scaler: Any = None,
                    map_location: str | torch.device = "cpu", restore_rng: bool = False) -> dict[str, Any]:
    """Read a checkpoint and load its parts into the objects given; return the whole checkpoint dict.

    Raises:
        CheckpointError: the file is missing, truncated or foreign, or its weights do not fit ``model``.
    """
    ckpt = read_checkpoint(path, map_location)
    if model is not None:
        target = unwrap(model)
        try:
            target.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {path} does not fit {type(target).__name__}: {e}") from e
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if ckpt.get(name) is None:
            if name == "scaler":
                continue
            raise CheckpointError(f"checkpoint {path} holds no {name} state; it cannot resume training")
        try:
            obj.load_state_dict(ckpt[name])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path}: its {name} state does not fit this run: {e}") from e
    if restore_rng and ckpt.get("rng"):
        set_rng_state(ckpt["rng"][0])
    return ckpt
