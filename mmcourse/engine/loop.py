"""``fit``: the training loop every chapter calls, written once and made fast.

Chapters 1–3 write this loop in the open; from chapter 4 on they call ``fit``. Chapter 12 measures what each
speed-up buys: GPU-resident data, bf16 autocast, channels_last, torch.compile, and no host synchronisation
inside the step (loss and accuracy are summed on the device and read once per epoch).
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mmcourse.engine import distributed as dist
from mmcourse.engine.batches import BatchSource
from mmcourse.engine.batches import modality_dropout as drop_modalities
from mmcourse.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mmcourse.engine.evaluation import run_evaluation, task_stats
from mmcourse.engine.history import Callback, History, TrainState
from mmcourse.engine.optim import make_optimizer, make_schedule
from mmcourse.engine.speed import (
    autocast_context,
    maybe_compile,
    model_to_channels_last,
    resolve_amp,
    resolve_channels_last,
    to_channels_last_inputs,
)
from mmcourse.runtime import pick_device

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
RESUME_KEYS = ("epochs", "lr", "batch_size", "optimizer", "schedule", "warmup", "seed")


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(model: nn.Module, train: object, val: object = None, *, epochs: int, lr: float = 1e-3,
        batch_size: int = 128, optimizer: str = "adamw", weight_decay: float = 0.0, schedule: str = "cosine",
        warmup: float = 0.0, clip_grad: float | None = None, task_weights: Mapping[str, float] | None = None,
        device: torch.device | str | None = None, amp: str | bool = "auto", channels_last: bool | str = "auto",
        compile: bool | str | Mapping[str, Any] = False, callbacks: Iterable[Callback] = (),
        progress: bool = True, checkpoint: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None, seed: int = 0, modality_dropout: float = 0.0) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; evaluate on ``val`` after each epoch.

    Args:
        model: maps ``(inputs, present)`` to ``{task: logits}`` (e.g. ``MultimodalModel``). Moved to ``device``.
        train, val: a dataset with ``inputs``/``targets`` dicts (kept on the device and indexed there), an object
            with ``.batches(batch_size, shuffle=, seed=, drop_last=)``, or any iterable of ``Batch``.
        epochs: total epochs (when resuming, training continues up to this number).
        lr, optimizer, weight_decay: ``adamw`` or ``sgd`` (momentum 0.9); no decay on biases/norm scales.
        batch_size: the global batch size (split across ranks under torchrun).
        schedule, warmup: ``cosine`` | ``onecycle`` | ``constant``, stepped every batch; ``warmup`` < 1 is a
            fraction of all steps, ≥ 1 a number of steps.
        clip_grad: clip the global gradient norm to this value.
        task_weights: ``{task: weight}`` in the loss (default 1 per task). The loss is the weighted sum over
            tasks present in both the model's output and the targets of the mean cross-entropy.
        device: default ``pick_device()`` (under torchrun: the rank's GPU, or CPU).
        amp: ``auto`` (bf16 on CUDA, fp16 + loss scaling on GPUs without bf16, off on CPU) | bf16 | fp16 | off.
        channels_last: ``auto`` (on for CUDA) | True | False: NHWC layout for 4-D/5-D inputs and weights.
        compile: False | True | a backend name (``"aot_eager"``) | a dict of ``torch.compile`` arguments.
        callbacks: objects with any of ``on_epoch_begin(state)``, ``on_step_end(state)``,
            ``on_epoch_end(state, row)``, ``on_train_end(state)`` (see :class:`Callback`).
        progress: show tqdm progress bars (epochs and steps).
        checkpoint: a path written (atomically) at the end of every epoch.
        resume: a checkpoint path to continue from (model, optimiser, schedule, RNG, history, and the state of
            callbacks that have ``state_dict``, such as ``EarlyStopping``).
        seed: seeds the data order and the random number generators.
        modality_dropout: probability of dropping each modality of each training sample.

    Returns:
        The :class:`History` of per-epoch rows.

    Raises:
        torch.OutOfMemoryError: with a suggestion for a smaller batch size.
        CheckpointError: ``resume`` is missing, truncated, foreign or does not fit the model.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    info, dist_device = dist.setup(device)
    device = dist_device or torch.device(device if device is not None else pick_device())
    model.to(device)
    amp_dtype, use_scaler = resolve_amp(amp, device)
    cl = resolve_channels_last(channels_last, device)
    if cl:
        model_to_channels_last(model)
    src = BatchSource(train, device, rank=info.rank, world=info.world, channels_last=cl)
    vsrc = None if val is None else BatchSource(val, device, rank=info.rank, world=info.world, channels_last=cl)
    drop_last = compile not in (False, None)  # one shape per step: no recompilation for the last batch
    steps_per_epoch = src.num_batches(batch_size, drop_last)
    if steps_per_epoch is None:  # an iterable without len(): count it once
        steps_per_epoch = sum(1 for _ in src.epoch(batch_size))
    if steps_per_epoch == 0:
        raise ValueError(f"no training batches: {src.n} samples with batch_size={batch_size} and "
                         f"drop_last={drop_last}; use a smaller batch_size")
    opt = make_optimizer(model, optimizer, lr, weight_decay, device)
    sched = make_schedule(opt, schedule, epochs * steps_per_epoch, warmup, lr)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    config = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer,
              "weight_decay": weight_decay, "schedule": schedule, "warmup": warmup, "clip_grad": clip_grad,
              "task_weights": dict(task_weights or {}), "amp": str(amp), "channels_last": str(channels_last),
              "compile": compile if isinstance(compile, (bool, str)) else dict(compile), "seed": seed,
              "modality_dropout": modality_dropout, "world_size": info.world, "device": str(device)}
    history, start_epoch, step = History(), 0, 0
    callbacks = list(callbacks)
    if resume is not None:
        ckpt = load_checkpoint(resume, model, opt, sched, scaler=scaler, map_location=device)
        rngs = ckpt.get("rng") or []
        if rngs:
            set_rng_state(rngs[info.rank] if len(rngs) == info.world else rngs[0])
        start_epoch, step, history = int(ckpt["epoch"]), int(ckpt["step"]), History(ckpt.get("history"))
        restore_callback_states(callbacks, (ckpt.get("extra") or {}).get("callbacks", []), resume)
        old = ckpt.get("config", {})
        changed = [k for k in RESUME_KEYS if k in old and old[k] != config[k]]
        if changed:
            warnings.warn(f"resuming {resume} with changed settings {changed}: the run will differ from one "
                          "that never stopped", stacklevel=2)
    else:
        _seed_all(seed + info.rank)
    net = maybe_compile(dist.wrap(model, info, device, _may_leave_unused(model, src, task_weights)), compile)
    state = TrainState(model=model, optimizer=opt, history=history, epoch=start_epoch, step=step)
    step_hooks = [cb.on_step_end for cb in callbacks if hasattr(cb, "on_step_end")]
    params = [p for p in model.parameters() if p.requires_grad]
    show = progress and info.is_main
    try:
        bar = tqdm(total=epochs, initial=start_epoch, desc="fit", unit="epoch", disable=not show)
        for epoch in range(start_epoch, epochs):
            state.epoch = epoch + 1
            model.train()
            for cb in callbacks:
                getattr(cb, "on_epoch_begin", lambda _s: None)(state)
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct: dict[str, torch.Tensor] = {}
            seen = 0
            steps = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False,
                         disable=not show)
            for batch, n_global in src.epoch(batch_size, shuffle=True, seed=_epoch_seed(seed, epoch),
                                             drop_last=drop_last):
                if modality_dropout:
                    batch = drop_modalities(batch, modality_dropout)
                inputs = to_channels_last_inputs(batch.inputs) if cl else batch.inputs
                with autocast_context(device, amp_dtype):
                    out = net(inputs, batch.present)
                    ls, cs = task_stats(out, batch.targets, task_weights)
                loss = ls * (info.world / n_global)  # DDP averages over ranks: this makes it the global mean
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if clip_grad is not None:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, clip_grad)
                scaler.step(opt)
                scaler.update()
                sched.step()
                step += 1
                seen += n_global
                loss_sum += ls.detach()
                for t, c in cs.items():
                    correct[t] = correct[t] + c if t in correct else c.clone()
                state.step, state.loss = step, loss.detach()
                for hook in step_hooks:
                    hook(state)
                steps.update()
            steps.close()
            row = _epoch_row(epoch, loss_sum, correct, seen, info, opt, t0)
            if vsrc is not None:
                res = run_evaluation(net, vsrc, batch_size=max(batch_size, 512), amp_dtype=amp_dtype,
                                     channels_last=cl, info=info)
                row.update({f"val_{k}": v for k, v in res.items()})
            history.append(row)
            for cb in callbacks:
                getattr(cb, "on_epoch_end", lambda _s, _r: None)(state, row)
            if checkpoint is not None:  # after the callbacks, so that their state (e.g. early stopping) is kept
                rngs = dist.gather_objects(rng_state(), info)
                if info.is_main:
                    save_checkpoint(checkpoint, model, opt, sched, epoch=epoch + 1, step=step, config=config,
                                    history=history.rows, scaler=scaler, rng=rngs,
                                    extra={"callbacks": callback_states(callbacks)})
                dist.barrier(info)
            bar.update()
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("train_loss", "val_loss", "val_acc") if k in row})
            if state.stop:
                break
        bar.close()
    except OutOfMemoryError as e:
        raise OutOfMemoryError(
            f"out of memory on {device} while training with batch_size={batch_size}: try "
            f"fit(..., batch_size={max(batch_size // 2, 1)}), a smaller model, or amp='bf16'. "
            f"Original error: {str(e).splitlines()[0] if str(e) else ''}") from e
    for cb in callbacks:
        getattr(cb, "on_train_end", lambda _s: None)(state)
    return history


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
                          f"{[s['type'] for s in saved]}); it starts afresh", stacklevel=3)


def _may_leave_unused(model: nn.Module, src: BatchSource, task_weights: Mapping[str, float] | None) -> bool:
    """Whether some parameters may get no gradient: heads without targets, encoders without inputs, zero
    task weights. True when the model or data cannot tell (then DDP searches every step, a little slower)."""
    heads, encoders = getattr(model, "heads", None), getattr(model, "encoders", None)
    if src.kind != "tensors" or heads is None or encoders is None:
        return True
    if any(w == 0 for w in (task_weights or {}).values()):
        return True
    return bool(set(heads) - set(src.targets)) or bool(set(encoders) - set(src.inputs))


def _epoch_row(epoch: int, loss_sum: torch.Tensor, correct: dict[str, torch.Tensor], seen: int,
               info: dist.DistInfo, opt: torch.optim.Optimizer, t0: float) -> dict[str, Any]:
    """Read the epoch's device sums once (all-reduced across ranks) into a row of plain numbers."""
    tasks = sorted(correct)
    packed = torch.stack([loss_sum.float(), *[correct[t].float() for t in tasks]])
    if info.world > 1:
        dist.all_reduce_sum(packed)
    vals = packed.tolist()  # the epoch's one host synchronisation (so the clock below is honest)
    seconds = time.perf_counter() - t0
    n = max(seen, 1)
    row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": vals[0] / n}
    row.update({f"train_acc/{t}": c / n for t, c in zip(tasks, vals[1:])})
    row["lr"] = float(opt.param_groups[0]["lr"])
    row["epoch_time_s"] = seconds
    row["samples_per_s"] = seen / seconds if seconds > 0 else float("nan")
    return row
