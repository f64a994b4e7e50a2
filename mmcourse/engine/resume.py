"""Saving and resuming a ``fit`` run: the whole training state in one atomic checkpoint, and back (chapter 13).

Kept out of the loop: ``save`` runs after the callbacks at the end of every epoch, ``restore`` once in
``prepare``. A resumed run continues bit for bit as if it had never stopped (the tests check it on a CPU).
"""

from __future__ import annotations

import random
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mmcourse.engine import distributed as dist
from mmcourse.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mmcourse.engine.history import History, callback_states, restore_callback_states

if TYPE_CHECKING:
    from mmcourse.engine.loop import Run

RESUME_KEYS = ("epochs", "lr", "batch_size", "optimizer", "schedule", "warmup", "seed")


def save(run: Run, path: str) -> None:
    """Write the whole training state atomically (rank 0; every rank's RNG state is gathered first)."""
    rngs = dist.gather_objects(rng_state(), run.info)
    if run.info.is_main:
        extra = {"callbacks": callback_states(run.callbacks)}
        if isinstance(run.loss, nn.Module):
            extra["loss"] = run.loss.state_dict()
        save_checkpoint(path, run.model, run.optimizer, run.scheduler, epoch=run.state.epoch, step=run.state.step,
                        config={**run.config.to_dict(), **run.meta}, history=run.state.history.rows,
                        scaler=run.scaler, rng=rngs, extra=extra)
    dist.barrier(run.info)


def restore(run: Run, path: str) -> None:
    """Continue from a checkpoint: weights, optimiser, schedule, scaler, RNGs, history, callbacks, loss."""
    ckpt = load_checkpoint(path, run.model, run.optimizer, run.scheduler, scaler=run.scaler, map_location=run.device)
    rngs = ckpt.get("rng") or []
    if rngs:
        set_rng_state(rngs[run.info.rank] if len(rngs) == run.info.world else rngs[0])
    run.state.epoch, run.state.step = int(ckpt["epoch"]), int(ckpt["step"])
    run.state.history = History(ckpt.get("history"))
    extra = ckpt.get("extra") or {}
    restore_callback_states(run.callbacks, extra.get("callbacks", []), path)
    if isinstance(run.loss, nn.Module) and extra.get("loss") is not None:
        run.loss.load_state_dict(extra["loss"])
    old, new = ckpt.get("config", {}), {**run.config.to_dict(), **run.meta}
    changed = [k for k in RESUME_KEYS if k in old and old[k] != new.get(k)]
    if changed:
        warnings.warn(f"resuming {path} with changed settings {changed}: the run will differ from one that never "
                      "stopped", stacklevel=3)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch for a fresh (not resumed) run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
