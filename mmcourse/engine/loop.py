"""``fit``: the one training loop every chapter calls, written as a few named steps and made fast.

Chapters 1–4 write a loop in the open; from chapter 5 on every chapter trains through ``fit``, whatever it
minimises (per-task cross-entropy, a weighted multi-task loss, contrastive InfoNCE, next-word prediction).
Chapter 13 takes it apart: ``prepare`` builds the run (device, data, optimiser, schedule, loss scaler, resume),
``train_epoch`` loops ``train_step`` over the batches, ``evaluate_epoch`` measures the validation data, and
``end_epoch`` records the row, calls the callbacks and saves a checkpoint. The speed comes from GPU-resident
data, autocast (bf16, or fp16 with a GradScaler), channels_last, torch.compile, and no host synchronisation
inside the step: losses, metrics and the NaN/inf watch are summed on the device and read once per epoch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mmcourse.batch import Batch, DataSource
from mmcourse.engine import distributed as dist
from mmcourse.engine.batches import BatchSource
from mmcourse.engine.batches import modality_dropout as drop_modalities
from mmcourse.engine.checks import (
    check_device,
    check_monitors,
    check_splits,
    check_writable,
    diagnose_nonfinite,
)
from mmcourse.engine.config import FitConfig
from mmcourse.engine.diagnostics import global_grad_norm as grad_norm
from mmcourse.engine.evaluation import Tally, run_evaluation
from mmcourse.engine.history import HOOKS, Callback, History, TrainState
from mmcourse.engine.optim import OptimizerSpec, build_optimizer, make_schedule
from mmcourse.engine.resume import restore, save, seed_all
from mmcourse.engine.speed import (
    autocast_context,
    maybe_compile,
    model_to_channels_last,
    resolve_amp,
    resolve_channels_last,
    to_channels_last_inputs,
)
from mmcourse.losses import LossFn, TaskCrossEntropy, split_result
from mmcourse.runtime import pick_device

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
Data = DataSource | Iterable[Batch]  # tensors on the device, .batches(...), or any iterable of Batch


@dataclass
class Run:
    """Everything one call of ``fit`` holds, built by :func:`prepare`."""

    config: FitConfig
    model: nn.Module  # the plain module (weights, checkpoints)
    net: nn.Module  # what the step calls: the model, DDP-wrapped and/or compiled
    loss: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    train: BatchSource
    val: BatchSource | None
    device: torch.device
    info: dist.DistInfo
    amp_dtype: torch.dtype | None
    channels_last: bool
    steps_per_epoch: int
    state: TrainState
    callbacks: list[Any]  # the callbacks given to fit (their state is checkpointed)
    hooks: list[Any]  # the callbacks plus the loss when it has hooks (DWA updates its weights per epoch)
    meta: dict[str, Any] = field(default_factory=dict)  # plain values saved with the config


def fit(model: nn.Module, train: Data, val: Data | None = None, *, config: FitConfig | None = None,
        loss: LossFn | None = None, optimizer: OptimizerSpec = "adamw", callbacks: Iterable[Callback] = (),
        **overrides: Any) -> History:
    """Train ``model`` on ``train`` by minimising ``loss``; evaluate on ``val`` after every epoch.

    Args:
        model: maps ``(inputs, present)`` to a dict of outputs (``{task: logits}`` for ``MultimodalModel``).
        train, val: a dataset with ``inputs``/``targets`` dicts (kept on the device and indexed there), an object
            with ``.batches(batch_size, shuffle=, seed=, drop_last=)``, or any iterable of ``Batch``.
        config: a :class:`FitConfig`; keywords (``epochs=4, lr=1e-3, ...``, any FitConfig field) override it.
        loss: ``loss(outputs, batch) -> total`` or ``(total, {name: part})`` (see ``mmcourse.losses``);
            default per-task cross-entropy (``TaskCrossEntropy(config.task_weights)``). A loss that is an
            ``nn.Module`` has its parameters optimised with the model (a learned temperature, uncertainty
            weights) and its state checkpointed; one with callback hooks is called like a callback.
        optimizer: ``"adamw"`` | ``"sgd"``, a ready ``torch.optim.Optimizer`` (e.g. over discriminative
            param groups), or a factory called with fit's parameter groups.
        callbacks: objects with any of ``on_epoch_begin(state)``, ``on_step_end(state)``,
            ``on_epoch_end(state, row)``, ``on_train_end(state)`` (see :class:`Callback`).

    Returns:
        The :class:`History`: per epoch ``train_loss``, ``train_<part>`` (``train_acc/<task>``…), ``val_*``,
        ``lr``, ``epoch_time_s``, ``samples_per_s``.

    Raises:
        TypeError, ValueError: a bad setting or data (before anything trains), naming the culprit.
        NonFiniteError: the loss or a gradient became NaN/inf (the epoch and step are named; the last good
            checkpoint is kept).
        torch.OutOfMemoryError: with a suggestion for a smaller batch size.
        CheckpointError: ``resume`` is missing, truncated, foreign or does not fit the model.
    """
    config = FitConfig.make(config, overrides)
    run = prepare(model, train, val, config, loss, optimizer, callbacks)
    show = config.progress and run.info.is_main
    bar = tqdm(total=config.epochs, initial=run.state.epoch, desc="fit", unit="epoch", disable=not show)
    try:
        for epoch in range(run.state.epoch, config.epochs):
            row = train_epoch(run, epoch, show)
            if run.val is not None:
                row.update(evaluate_epoch(run))
            end_epoch(run, row)
            bar.update()
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("train_loss", "val_loss", "val_acc") if k in row})
            if run.state.stop:
                break
    except OutOfMemoryError as e:
        raise OutOfMemoryError(
            f"out of memory on {run.device} while training with batch_size={config.batch_size}: try "
            f"fit(..., batch_size={max(config.batch_size // 2, 1)}), a smaller model, or amp='bf16'. "
            f"Original error: {str(e).splitlines()[0] if str(e) else ''}") from e
    finally:
        bar.close()
    for cb in run.hooks:
        getattr(cb, "on_train_end", lambda _s: None)(run.state)
    return run.state.history


def prepare(model: nn.Module, train: Data, val: Data | None, config: FitConfig, loss: LossFn | None,
            optimizer: OptimizerSpec, callbacks: Iterable[Callback]) -> Run:
    """Check everything that can be checked before the first step, then build the run (or resume it)."""
    callbacks = list(callbacks)
    check_device(config.device)
    check_monitors(callbacks, val is not None)
    check_writable(config.checkpoint)
    if loss is not None and config.task_weights:
        raise ValueError("task_weights configure the default loss; pass the weights to your loss instead "
                         f"(got loss={type(loss).__name__} and task_weights={config.task_weights})")
    if loss is None:
        loss = TaskCrossEntropy(config.task_weights)
    elif not callable(loss):
        raise TypeError(f"loss must be callable as loss(outputs, batch), got {type(loss).__name__}")
    info, dist_device = dist.setup(config.device)
    device = dist_device or torch.device(config.device if config.device is not None else pick_device())
    model.to(device)
    if isinstance(loss, nn.Module):
        loss.to(device)
    amp_dtype, use_scaler = resolve_amp(config.amp, device)
    cl = resolve_channels_last(config.channels_last, device)
    if cl:
        model_to_channels_last(model)
    src = BatchSource(train, device, rank=info.rank, world=info.world, channels_last=cl)
    vsrc = None if val is None else BatchSource(val, device, rank=info.rank, world=info.world, channels_last=cl)
    check_splits(src, vsrc)
    drop_last = config.drop_last or config.compile is not False  # compile: one shape per step, no recompiles
    steps = src.num_batches(config.batch_size, drop_last)
    if steps is None:  # an iterable without len(): count it once
        steps = sum(1 for _ in src.epoch(config.batch_size))
    if steps == 0:
        raise ValueError(f"no training batches: {src.n} samples with batch_size={config.batch_size} and "
                         f"drop_last={drop_last}; use a smaller batch_size")
    opt = build_optimizer(optimizer, model, loss, lr=config.lr, weight_decay=config.weight_decay, device=device)
    sched = make_schedule(opt, config.schedule, config.epochs * steps, config.warmup, config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    hooks = callbacks + ([loss] if any(hasattr(loss, h) for h in HOOKS) else [])
    meta = {"optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
            "loss": type(loss).__name__, "world_size": info.world, "device": str(device)}
    run = Run(config, model, model, loss, opt, sched, scaler, src, vsrc, device, info, amp_dtype, cl, steps,
              TrainState(model=model, optimizer=opt, history=History()), callbacks, hooks, meta)
    if config.resume is not None:
        restore(run, config.resume)
    else:
        seed_all(config.seed + info.rank)
    run.net = maybe_compile(dist.wrap(model, info, device, config.find_unused), config.compile)
    return run


def train_step(run: Run, batch: Batch, n_global: int) -> tuple[Tensor, dict[str, Any], Tensor]:
    """One optimiser step on ``batch``; returns the loss, its parts and a device flag per problem
    ``[loss non-finite, gradient non-finite]`` (read at the end of the epoch, not here)."""
    cfg, opt, scaler = run.config, run.optimizer, run.scaler
    if cfg.modality_dropout:
        batch = drop_modalities(batch, cfg.modality_dropout)
    inputs = to_channels_last_inputs(batch.inputs) if run.channels_last else batch.inputs
    with autocast_context(run.device, run.amp_dtype):
        out = run.net(inputs, batch.present)
        total, parts = split_result(run.loss(out, batch))
    scale = len(batch) * run.info.world / n_global  # DDP averages the ranks' gradients: this makes it the global mean
    opt.zero_grad(set_to_none=True)
    scaler.scale(total * scale if scale != 1 else total).backward()
    if run.info.world > 1 and isinstance(run.loss, nn.Module):  # DDP averages the model's gradients, not the loss's
        for p in run.loss.parameters():
            if p.grad is not None:
                dist.all_reduce_sum(p.grad).div_(run.info.world)
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    bad_grad = torch.zeros((), dtype=torch.bool, device=run.device)
    if cfg.clip_grad is not None or not scaler.is_enabled():  # (the scaler finds inf gradients itself)
        scaler.unscale_(opt)
        if cfg.clip_grad is not None:  # clip_grad_norm_ takes the parameters (it reads their .grad)
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        else:  # only measure: no rescaling pass over the gradients
            norm = grad_norm(params)
        bad_grad = ~torch.isfinite(norm) if not scaler.is_enabled() else bad_grad
    bad = torch.stack([~torch.isfinite(total.detach()), bad_grad.to(run.device)])
    if cfg.nonfinite == "skip" and bool(bad.any()):  # one host sync per step, only in this mode
        run.state.extra["skipped_steps"] = run.state.extra.get("skipped_steps", 0) + 1
        opt.zero_grad(set_to_none=True)
    else:
        scaler.step(opt)
        scaler.update()
    run.scheduler.step()
    return total.detach(), parts, bad


def train_epoch(run: Run, epoch: int, show: bool = False) -> dict[str, Any]:
    """One pass over the training data; returns the epoch's row (read from the device once)."""
    cfg, state = run.config, run.state
    state.epoch = epoch + 1
    run.model.train()
    if isinstance(run.loss, nn.Module):
        run.loss.train()
    for cb in run.hooks:
        getattr(cb, "on_epoch_begin", lambda _s: None)(state)
    step_hooks = [cb.on_step_end for cb in run.hooks if hasattr(cb, "on_step_end")]
    t0, seen = time.perf_counter(), 0
    tally = Tally(run.device)
    first_bad = torch.full((2,), -1, dtype=torch.long, device=run.device)  # first bad step: [loss, gradient]
    bar = tqdm(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
               disable=not show)
    drop_last = cfg.drop_last or cfg.compile is not False
    for i, (batch, n_global) in enumerate(run.train.epoch(cfg.batch_size, shuffle=True,
                                                          seed=epoch_seed(cfg.seed, epoch), drop_last=drop_last)):
        total, parts, bad = train_step(run, batch, n_global)
        first_bad = torch.where((first_bad < 0) & bad, i, first_bad)
        tally.add(total, parts, n_global)
        seen += n_global
        state.step, state.loss = state.step + 1, total
        for hook in step_hooks:
            hook(state)
        bar.update()
    bar.close()
    values, flags = tally.read(run.info, first_bad)  # the epoch's one host synchronisation
    for kind, at in zip(("loss", "gradient"), flags):
        if at >= 0 and cfg.nonfinite == "raise":
            raise diagnose_nonfinite(run.train, batch_size=cfg.batch_size, seed=epoch_seed(cfg.seed, epoch),
                                     drop_last=drop_last, epoch=epoch + 1,
                                     step=state.step - run.steps_per_epoch + int(at) + 1, step_in_epoch=int(at),
                                     kind=kind, lr=cfg.lr, checkpoint=cfg.checkpoint)
    seconds = time.perf_counter() - t0
    row: dict[str, Any] = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in values.items()}}
    row["lr"] = float(run.optimizer.param_groups[0]["lr"])
    row["epoch_time_s"] = seconds
    row["samples_per_s"] = seen / seconds if seconds > 0 else float("nan")
    if cfg.nonfinite == "skip":
        row["skipped_steps"] = state.extra.get("skipped_steps", 0)
    return row


def evaluate_epoch(run: Run) -> dict[str, float]:
    """The validation numbers of this epoch, as ``val_<name>``."""
    res = run_evaluation(run.net, run.val, batch_size=run.config.evaluation_batch_size, amp_dtype=run.amp_dtype,
                         loss=run.loss, channels_last=run.channels_last, info=run.info)
    return {f"val_{k}": v for k, v in res.items()}


def end_epoch(run: Run, row: dict[str, Any]) -> None:
    """Record the row, call the callbacks, then checkpoint (after them, so that their state is kept)."""
    run.state.history.append(row)
    for cb in run.hooks:
        getattr(cb, "on_epoch_end", lambda _s, _r: None)(run.state, row)
    if run.config.checkpoint is not None:
        save(run, run.config.checkpoint)


def epoch_seed(seed: int, epoch: int) -> int:
    """The data-order seed of ``epoch`` (the same for every rank, so the ranks shard one order)."""
    return (seed * 1_000_003 + epoch) % (2**63)
