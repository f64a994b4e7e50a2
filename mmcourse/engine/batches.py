"""Where the engine's batches come from: GPU-resident iteration, per-rank sharding, masks and modality dropout.

Chapter 13 explains the speed-up: a small dataset is copied to the GPU once and indexed there, so no
DataLoader and no host→device copy runs inside the training step. Chapter 9 uses ``modality_dropout`` and
``mask_modalities`` (missing-modality training and evaluation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import Tensor

from mmcourse.batch import Batch, keep_mask, mask_modalities, present_matrix, tensor_batches
from mmcourse.engine.speed import to_channels_last_inputs

__all__ = ["BatchSource", "mask_modalities", "modality_dropout"]


def _tensor_dict(x: object, allow_empty: bool = False) -> bool:
    return isinstance(x, Mapping) and (allow_empty or len(x) > 0) and all(isinstance(v, Tensor) for v in x.values())


def _move(d: Mapping[str, Tensor] | None, device: torch.device) -> dict[str, Tensor] | None:
    if d is None:
        return None
    return {k: v.to(device, non_blocking=True) for k, v in d.items()}


def _slice(d: Mapping[str, Tensor] | None, lo: int, hi: int) -> dict[str, Tensor] | None:
    return None if d is None else {k: v[lo:hi] for k, v in d.items()}


class BatchSource:
    """A re-iterable view of training or evaluation data on ``device``, sharded for rank ``rank`` of ``world``.

    ``data`` may be (checked in this order): a :class:`Batch` or an object with ``inputs``/``targets`` dicts of
    tensors (e.g. a ``MultimodalDataset``) — kept on ``device`` and indexed there (GPU-resident); an object with
    ``.batches(batch_size, shuffle=, seed=, drop_last=)``; or any iterable of ``Batch`` (e.g. a DataLoader).
    With ``channels_last`` the resident image/video tensors are stored NHWC / NDHWC once.

    ``batch_size`` is always the *global* batch: with several ranks each rank gets a contiguous slice of every
    global batch, so a run on W ranks sees the same batches as a single process.
    """

    def __init__(self, data: object, device: torch.device, *, rank: int = 0, world: int = 1,
                 channels_last: bool = False):
        self.device, self.rank, self.world = torch.device(device), rank, world
        inputs, targets = getattr(data, "inputs", None), getattr(data, "targets", None)
        if _tensor_dict(inputs) and _tensor_dict(targets, allow_empty=True):  # targets may be {} (contrastive)
            sizes = {int(v.shape[0]) for v in (*inputs.values(), *targets.values())}
            if len(sizes) != 1:
                shapes = {k: tuple(v.shape) for k, v in {**inputs, **targets}.items()}
                raise ValueError(f"inputs and targets must have the same number of rows; got shapes {shapes}")
            self.kind, self.n = "tensors", sizes.pop()
            present = getattr(data, "present", None)
            self.inputs, self.targets = _move(inputs, self.device), _move(targets, self.device)
            if channels_last:  # once, here, rather than a copy of every batch in the step
                self.inputs = to_channels_last_inputs(self.inputs)
            self.present = _move(present, self.device) if _tensor_dict(present) else None
        elif hasattr(data, "batches"):
            self.kind, self.data = "batches", data
            self.n = len(data) if hasattr(data, "__len__") else None
        elif isinstance(data, Iterable):
            if iter(data) is data:  # a one-shot iterator: keep its batches so that every epoch sees them
                data = list(data)
            self.kind, self.data = "iterable", data
            self.n = None
        else:
            raise TypeError(f"cannot train on {type(data).__name__}: pass a dataset with inputs/targets dicts, "
                            "an object with .batches(...), or an iterable of mmcourse.batch.Batch")

    def num_batches(self, batch_size: int, drop_last: bool) -> int | None:
        """Batches per epoch, or None when the data cannot say."""
        if self.n is not None:
            return self.n // batch_size if drop_last else -(-self.n // batch_size)
        try:
            return len(self.data)  # type: ignore[arg-type]
        except TypeError:
            return None

    def epoch(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False
              ) -> Iterator[tuple[Batch, int]]:
        """Yield ``(local batch on device, size of the global batch)`` for one pass over the data."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.kind == "tensors":
            yield from self._tensor_epoch(batch_size, shuffle, seed, drop_last)
            return
        if self.kind == "batches":
            it = self.data.batches(batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
        else:
            it = iter(self.data)
        for b in it:
            if not isinstance(b, Batch):
                raise TypeError(f"expected mmcourse.batch.Batch from the data, got {type(b).__name__}")
            n = len(b)
            lo, hi = self.rank * n // self.world, (self.rank + 1) * n // self.world
            if self.world > 1:
                if n < self.world:
                    continue
                b = Batch(_slice(b.inputs, lo, hi), _slice(b.targets, lo, hi), _slice(b.present, lo, hi))
            yield b.to(self.device, non_blocking=True), n

    def _tensor_epoch(self, batch_size: int, shuffle: bool, seed: int, drop_last: bool
                      ) -> Iterator[tuple[Batch, int]]:
        yield from tensor_batches(self.inputs, self.targets, batch_size, present=self.present, shuffle=shuffle,
                                  seed=seed, drop_last=drop_last, rank=self.rank, world=self.world)


def modality_dropout(batch: Batch, p: float, generator: torch.Generator | None = None) -> Batch:
    """Drop each modality of each sample with probability ``p``, always keeping at least one per sample.

    The input-level twin of :class:`mmcourse.fusion.ModalityDropout` (which hides encoder features), with the
    same mask (:func:`mmcourse.batch.keep_mask`): a modality already missing stays missing and never
    counts as the one that is kept.

    A dropped modality is zeroed in ``inputs`` and marked False in ``present`` (bool ``[B]`` per modality),
    so fusion modules that read ``present`` can ignore it. With a single modality nothing is dropped.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"modality dropout probability must be in [0, 1), got {p}")
    names = sorted(batch.inputs)
    if p == 0.0 or len(names) < 2:
        return batch
    ref = batch.inputs[names[0]]
    old = batch.present or {}
    available = present_matrix(names, old, ref.shape[0], ref.device)  # [B, M]
    keep = keep_mask(ref.shape[0], len(names), p, available=available, generator=generator)  # [B, M]
    present = {**old, **{name: keep[:, j] for j, name in enumerate(names)}}
    return Batch(mask_modalities(batch.inputs, present), batch.targets, present)
