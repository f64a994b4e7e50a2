"""``evaluate`` and the device-side tally of a loss's total and parts, read once per epoch.

Every chapter calls ``evaluate(model, data)``; chapter 9 passes ``present`` to measure a model with a modality
missing. Training and evaluation report the same things by the same rule (``mmcourse.losses``): the loss's
total and its named parts, summed on the device and read with one host synchronisation at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.batch import Batch, DataSource, check_present, mask_modalities
from mmcourse.engine import distributed as dist
from mmcourse.engine.batches import BatchSource
from mmcourse.engine.speed import autocast_context, resolve_amp, to_channels_last_inputs
from mmcourse.losses import LossFn, Part, TaskCrossEntropy, split_result, task_sums


class Tally:
    """Sums of ``loss`` (weighted by batch size) and of every part, kept on ``device`` until :meth:`read`.

    A part given as a batch mean is weighted by the batch size; a ``(sum, count)`` part is summed as it is.
    Counts that are Python ints stay on the host, so adding a batch never waits for the device.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.num: dict[str, Tensor] = {}
        self.den_host: dict[str, int] = {}
        self.den_dev: dict[str, Tensor] = {}

    def _add(self, name: str, value: Tensor, count: Tensor | int) -> None:
        value = value.detach().float()
        self.num[name] = self.num[name] + value if name in self.num else value.clone()
        if isinstance(count, Tensor):
            count = count.detach().float()
            self.den_dev[name] = self.den_dev[name] + count if name in self.den_dev else count.clone()
        else:
            self.den_host[name] = self.den_host.get(name, 0) + int(count)

    def add(self, total: Tensor, parts: Mapping[str, Part], n: int) -> None:
        self._add("loss", total * n, n)
        for name, part in parts.items():
            if isinstance(part, tuple):
                self._add(name, part[0], part[1])
            else:
                self._add(name, part * n, n)

    def __bool__(self) -> bool:
        return bool(self.num)

    def read(self, info: dist.DistInfo | None = None, extra: Tensor | None = None
             ) -> tuple[dict[str, float], list[float]]:
        """``{name: Σ value / Σ count}`` (plus ``acc``: the mean of the ``acc/<task>`` parts), all-reduced
        across ranks; and the values of ``extra`` (a 1-D float tensor read in the same host synchronisation)."""
        names = sorted(self.num)
        dev_den = [n for n in names if n in self.den_dev]
        packed = torch.stack([self.num[n] for n in names] + [self.den_dev[n] for n in dev_den])
        host_den = torch.tensor([float(self.den_host.get(n, 0)) for n in names])
        if extra is not None:
            packed = torch.cat([packed, extra.float().to(packed.device)])
        if info is not None and info.world > 1:
            dist.all_reduce_sum(packed)
            host_den = dist.all_reduce_sum(host_den.to(packed.device)).cpu()
        vals = packed.tolist()  # the one host synchronisation
        den = dict(zip(names, host_den.tolist()))
        for i, n in enumerate(dev_den):
            den[n] += vals[len(names) + i]
        out = {n: vals[i] / den[n] if den[n] else float("nan") for i, n in enumerate(names)}
        accs = [v for k, v in out.items() if k.startswith("acc/")]
        if accs:
            out["acc"] = sum(accs) / len(accs)
        return out, vals[len(names) + len(dev_den):]


def task_stats(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
               weights: Mapping[str, float] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Summed weighted cross-entropy over the labelled samples and the correct predictions per task.

    Kept for the benchmark's plain loop and FLOP counts; it follows the same -100 rule as the loss.
    """
    loss, correct = None, {}
    for t, (ce, c, _n) in task_sums(outputs, targets).items():
        w = 1.0 if weights is None else float(weights.get(t, 1.0))
        loss = w * ce if loss is None else loss + w * ce
        correct[t] = c
    return loss, correct


def _present_for(present: Mapping[str, object], batch: Batch, offset: int) -> dict[str, Tensor]:
    """Per-batch bool masks from ``present`` given as bools (every sample) or bool tensors ``[N]``."""
    n = len(batch)
    ref = next(iter({**batch.inputs, **batch.targets}.values()))
    masks = dict(batch.present or {})
    for m, v in present.items():
        if isinstance(v, Tensor) and v.dim() > 0:
            mask = v[offset:offset + n].to(ref.device, torch.bool)
        else:
            mask = torch.full((n,), bool(v), device=ref.device)
        masks[m] = mask & masks[m] if m in masks else mask
    return masks


def _check_present_arg(present: Mapping[str, object], source: BatchSource) -> None:
    """``evaluate(present=...)``: per-sample masks must be bool ``[N]`` for the N samples evaluated (a longer
    mask would be cut silently, a float one rounded); a plain bool drops or keeps a modality for every sample."""
    masks = {m: v for m, v in present.items() if isinstance(v, Tensor) and v.dim() > 0}
    for m, v in present.items():
        if not isinstance(v, (bool, Tensor)):
            raise TypeError(f"present[{m!r}] must be True/False or a bool tensor [N], got {type(v).__name__}")
    if masks:
        names = list(source.inputs) if source.kind == "tensors" else list(present)
        check_present(masks, names, batch=source.n, device=None)


def _nonfinite_inputs(inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per float input, a device bool: does it hold a NaN or inf?"""
    return {m: ~torch.isfinite(x).all() for m, x in inputs.items() if x.is_floating_point()}


@torch.no_grad()
def run_evaluation(model: nn.Module, source: BatchSource, *, batch_size: int, amp_dtype: torch.dtype | None,
                   loss: LossFn | None = None, channels_last: bool = False,
                   present: Mapping[str, object] | None = None, info: dist.DistInfo | None = None
                   ) -> dict[str, float]:
    """Evaluate on a prepared :class:`BatchSource`; sums are all-reduced across ranks when distributed.

    Raises:
        ValueError: the data is empty, or a float input holds NaN/inf (the message names the input).
    """
    loss = loss if loss is not None else TaskCrossEntropy()
    was_training = model.training
    loss_was_training = getattr(loss, "training", None)
    model.eval()
    if isinstance(loss, nn.Module):
        loss.eval()
    device = source.device
    tally, bad = Tally(device), {}
    offset = 0
    try:
        for batch, _ in source.epoch(batch_size, shuffle=False):
            if present:
                if source.world > 1:
                    raise ValueError("evaluate(present=...) is not supported across several ranks")
                masks = _present_for(present, batch, offset)
                batch = Batch(mask_modalities(batch.inputs, masks), batch.targets, masks)
            offset += len(batch)
            for m, flag in _nonfinite_inputs(batch.inputs).items():
                bad[m] = bad[m] | flag if m in bad else flag
            inputs = to_channels_last_inputs(batch.inputs) if channels_last else batch.inputs
            with autocast_context(device, amp_dtype):
                out = model(inputs, batch.present)
                total, parts = split_result(loss(out, batch))
            tally.add(total, parts, len(batch))
    finally:
        model.train(was_training)
        if isinstance(loss, nn.Module) and loss_was_training is not None:
            loss.train(loss_was_training)
    if not tally:
        raise ValueError("evaluate got no batches: the data is empty")
    names = sorted(bad)
    result, flags = tally.read(info, torch.stack([bad[m] for m in names]) if names else None)
    culprits = [m for m, f in zip(names, flags) if f]
    if culprits:
        raise ValueError(f"evaluate: input {culprits} holds NaN or inf values; clean the data (e.g. "
                         f"torch.nan_to_num) or find where they come from")
    return result


def evaluate(model: nn.Module, data: DataSource | Iterable[Batch], *, batch_size: int = 512,
             device: torch.device | str | None = None, present: Mapping[str, object] | None = None,
             loss: LossFn | None = None) -> dict[str, Any]:
    """Loss and metrics of ``model`` on ``data``.

    Args:
        model: maps ``(inputs, present)`` to a dict of outputs (``{task: logits}`` for classifiers).
        data: a dataset (``inputs``/``targets`` dicts or ``.batches(...)``) or an iterable of ``Batch``.
        batch_size: evaluation batch size.
        device: where to run; default: the device of the model's parameters.
        present: simulate missing modalities: ``{modality: False}`` drops it for every sample, a bool tensor
            ``[N]`` per sample. Dropped inputs are zeroed and marked False in the batch's ``present``.
        loss: the loss to report (default :class:`~mmcourse.losses.TaskCrossEntropy`, as ``fit``'s).

    Returns:
        ``{"loss": mean loss, <part>: mean of each part}``; with the default loss the parts are
        ``loss/<task>`` and ``acc/<task>`` over the labelled samples (targets of -100 are left out), and
        ``acc`` is the mean accuracy over tasks.
    """
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    if isinstance(loss, nn.Module):
        loss.to(device)
    info = dist.current()
    source = BatchSource(data, device, rank=info.rank, world=info.world)
    if present:
        _check_present_arg(present, source)
    amp_dtype, _ = resolve_amp("auto", device)
    return run_evaluation(model, source, batch_size=batch_size, amp_dtype=amp_dtype, loss=loss, present=present,
                          info=info)
