"""The multi-task loss and ``evaluate``: loss and accuracy per task, accumulated on the device.

Every chapter calls ``evaluate(model, data)``; chapter 8 passes ``present`` to measure a model with a modality
missing. Sums stay on the device and are read once at the end, so evaluation never waits on the host per batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.engine import distributed as dist
from mmcourse.engine.batches import BatchSource, mask_modalities
from mmcourse.engine.speed import autocast_context, resolve_amp, to_channels_last_inputs
from mmcourse.models import Batch


def task_stats(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
               weights: Mapping[str, float] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Summed weighted cross-entropy over the batch and the number of correct predictions per task.

    Only tasks that are both in ``outputs`` and ``targets`` count. Returns ``(loss_sum, {task: correct})``,
    both device tensors (no host synchronisation); divide ``loss_sum`` by the batch size for the mean.
    """
    tasks = sorted(set(outputs) & set(targets))
    if not tasks:
        raise ValueError(f"the model predicts tasks {sorted(outputs)} but the data has targets {sorted(targets)};"
                         " at least one task must be in both")
    loss, correct = None, {}
    for t in tasks:
        logits, y = outputs[t].float(), targets[t]
        w = 1.0 if weights is None else float(weights.get(t, 1.0))
        ce = F.cross_entropy(logits, y, reduction="sum")
        loss = w * ce if loss is None else loss + w * ce
        correct[t] = (logits.argmax(-1) == y).sum()
    return loss, correct


def _present_for(present: Mapping[str, object], batch: Batch, offset: int) -> dict[str, Tensor]:
    """Per-batch bool masks from ``present`` given as bools (every sample) or bool tensors ``[N]``."""
    n = len(batch)
    ref = next(iter(batch.targets.values()))
    masks = dict(batch.present or {})
    for m, v in present.items():
        if isinstance(v, Tensor) and v.dim() > 0:
            mask = v[offset:offset + n].to(ref.device, torch.bool)
        else:
            mask = torch.full((n,), bool(v), device=ref.device)
        masks[m] = mask & masks[m] if m in masks else mask
    return masks


@torch.no_grad()
def run_evaluation(model: nn.Module, source: BatchSource, *, batch_size: int, amp_dtype: torch.dtype | None,
                   channels_last: bool = False, present: Mapping[str, object] | None = None,
                   info: dist.DistInfo | None = None) -> dict[str, float]:
    """Evaluate on a prepared :class:`BatchSource`; sums are all-reduced across ranks when distributed."""
    was_training = model.training
    model.eval()
    device = source.device
    loss_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    correct: dict[str, Tensor] = {}
    offset = 0
    try:
        for batch, _ in source.epoch(batch_size, shuffle=False):
            if present:
                if source.world > 1:
                    raise ValueError("evaluate(present=...) is not supported across several ranks")
                masks = _present_for(present, batch, offset)
                batch = Batch(mask_modalities(batch.inputs, masks), batch.targets, masks)
            offset += len(batch)
            inputs = to_channels_last_inputs(batch.inputs) if channels_last else batch.inputs
            with autocast_context(device, amp_dtype):
                out = model(inputs, batch.present)
            ls, cs = task_stats(out, batch.targets)
            loss_sum += ls
            count += len(batch)
            for t, c in cs.items():
                correct[t] = correct[t] + c if t in correct else c.clone()
    finally:
        model.train(was_training)
    if not correct:
        raise ValueError("evaluate got no batches: the data is empty")
    tasks = sorted(correct)
    packed = torch.stack([loss_sum, count, *[correct[t].to(count.dtype) for t in tasks]])
    if info is not None and info.world > 1:
        dist.all_reduce_sum(packed)
    vals = packed.tolist()  # the one host read
    n = vals[1]
    result = {"loss": vals[0] / n}
    accs = {f"acc/{t}": c / n for t, c in zip(tasks, vals[2:])}
    result.update(accs)
    result["acc"] = sum(accs.values()) / len(accs)
    return result


def evaluate(model: nn.Module, data: object, *, batch_size: int = 512, device: torch.device | str | None = None,
             present: Mapping[str, object] | None = None) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``data``.

    Args:
        model: maps ``(inputs, present)`` to ``{task: logits}``.
        data: a dataset (``inputs``/``targets`` dicts or ``.batches(...)``) or an iterable of ``Batch``.
        batch_size: evaluation batch size.
        device: where to run; default: the device of the model's parameters.
        present: simulate missing modalities: ``{modality: False}`` drops it for every sample, a bool tensor
            ``[N]`` per sample. Dropped inputs are zeroed and marked False in the batch's ``present``.

    Returns:
        ``{"loss": mean summed-over-tasks cross-entropy, "acc/<task>": accuracy, "acc": mean over tasks}``.
    """
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    info = dist.current()
    source = BatchSource(data, device, rank=info.rank, world=info.world)
    amp_dtype, _ = resolve_amp("auto", device)
    return run_evaluation(model, source, batch_size=batch_size, amp_dtype=amp_dtype, present=present, info=info)
