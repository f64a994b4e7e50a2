"""What ``fit`` checks before its first step, and what it says when a loss or gradient turns NaN/inf.

Chapter 4 debugs training by hand; ``fit`` does the same checks for every chapter. Before the first step: the
device exists, the splits are not empty, a callback that watches a ``val_*`` number has validation data, the
checkpoint folder is writable. During training a non-finite loss or gradient is noted on the device (no host
synchronisation per step) and reported at the end of the epoch, naming the epoch, the step and the likely
cause — before that epoch is checkpointed, so the last good checkpoint stays as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from mmcourse.engine.batches import BatchSource


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or inf loss or gradient; the message names the epoch, the step and a likely cause."""


def check_device(device: str | None) -> None:
    """Raise ``RuntimeError`` when the requested device is not on this machine."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a device name; use cpu, cuda, cuda:N or mps") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but CUDA is not available on this machine; use device='cpu' "
                               "or leave device=None (pick_device() chooses)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RuntimeError(f"device={device!r} but MPS is not available on this machine; use device='cpu'")


def check_splits(src: BatchSource, vsrc: BatchSource | None) -> None:
    """Raise ``ValueError`` for an empty training or validation split."""
    if src.n == 0:
        raise ValueError("the training data is empty (0 samples)")
    if vsrc is not None and vsrc.n == 0:
        raise ValueError("the validation data is empty (0 samples); pass val=None to train without it")


def check_monitors(callbacks: Iterable[Any], has_val: bool) -> None:
    """A callback that watches a ``val_*`` number (``EarlyStopping("val_acc")``) needs validation data."""
    if has_val:
        return
    for cb in callbacks:
        monitor = getattr(cb, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("val_"):
            raise ValueError(f"{type(cb).__name__} monitors {monitor!r}, but fit got no validation data: pass "
                             f"fit(model, train, val, ...) or monitor a train_* number")


def check_writable(path: str | None) -> None:
    """Write and remove a probe file in the checkpoint's folder (created if missing)."""
    if path is None:
        return
    folder = Path(path).resolve().parent
    probe = folder / f".mmcourse-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise type(e)(f"cannot write checkpoints to {folder}: {e.strerror or e}; choose a writable "
                      "folder for checkpoint=") from e


def diagnose_nonfinite(src: BatchSource, *, batch_size: int, seed: int, drop_last: bool, epoch: int,
                       step: int, step_in_epoch: int, kind: str, lr: float, checkpoint: str | None) -> NonFiniteError:
    """Replay the epoch's data order up to the bad step and say whether its inputs held NaN/inf."""
    cause = None
    for i, (batch, _) in enumerate(src.epoch(batch_size, shuffle=True, seed=seed, drop_last=drop_last)):
        if i == step_in_epoch:
            bad = {m: int((~torch.isfinite(x)).sum()) for m, x in batch.inputs.items() if x.is_floating_point()}
            bad = {m: c for m, c in bad.items() if c}
            if bad:
                cause = (f"input {sorted(bad)} of that batch holds NaN/inf values ({bad}); clean the data "
                         "(check its normalisation, e.g. a std of 0)")
            break
    if cause is None:
        cause = (f"the inputs of that batch are finite, so training diverged: the learning rate (lr={lr:g}) is "
                 "likely too high; try a smaller lr, clip_grad=1.0, a warmup, or amp='off'")
    kept = f"; the last good checkpoint {checkpoint} was left as it was" if checkpoint else ""
    return NonFiniteError(f"fit stopped: the {kind} became NaN/inf in epoch {epoch}, step {step} (step "
                          f"{step_in_epoch + 1} of the epoch): {cause}{kept}. fit(..., nonfinite='skip') "
                          "skips such steps instead")
