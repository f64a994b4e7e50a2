"""``MultimodalDataset``: tensors of every modality and task in memory (ideally on the GPU), and batches of it.

Used by every chapter. ``ds.batches(...)`` is the GPU-resident iterator: the whole split lives on the device,
each epoch draws one index permutation and batches are index operations there — no per-sample Python.
``ds.as_torch_dataset()`` + :func:`collate_batches` is the standard ``DataLoader`` path for data that does
not fit on the device.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mmcourse.batch import (
    Batch,
    check_finite,
    check_inputs,
    check_label_values,
    check_names,
    check_targets,
    tensor_batches,
)
from mmcourse.data.text import Vocab


def _names(given: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    if given is None:
        return list(known)
    names = [given] if isinstance(given, str) else list(given)
    check_names(names, known, what)  # UnknownNameError (a KeyError) listing the valid names
    if not names:
        raise ValueError(f"select needs at least one {what}; this dataset has {sorted(known)}")
    return names


def _check_batch_size(batch_size: object) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


class MultimodalDataset:
    """A dataset held as tensors: ``inputs[modality]`` and ``targets[task]``, all with the same length N.

    Args:
        inputs: e.g. ``{"image": [N,3,32,32], "text": [N,L] int64, "audio": [N,1,n_mels,F],
            "video": [N,3,T,32,32]}``.
        targets: int64 ``[N]`` per task, e.g. ``{"shape": ..., "color": ...}``.
        classes: class names per task (``classes["shape"] == ["circle", ...]``).
        vocab: the text vocabulary when there is a ``text`` modality.
        name: a short description shown in ``repr``.
        meta: optional per-sample side information ``[N, ...]`` (e.g. the world's latent scene) that is
            carried by ``subset``/``select``/``to`` but never put in a batch.
        check_values: read the values once and refuse non-finite float inputs, labels outside
            ``[0, num_classes)`` (``IGNORE_INDEX`` = -100, "no label", is allowed) and token ids outside the
            vocabulary. Datasets derived from a checked one (``subset``, ``select``, ``to``) skip it.

    Raises:
        TypeError: an input or target of the wrong type or dtype (the message says how to convert it).
        ValueError: lengths that differ, a missing class list, a bad label, a non-finite input.
    """

    def __init__(self, inputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                 classes: Mapping[str, Sequence[str]], vocab: Vocab | None = None, name: str = "dataset",
                 meta: Mapping[str, Tensor] | None = None, *, check_values: bool = True):
        if isinstance(inputs, Mapping) and not inputs:
            raise ValueError("a MultimodalDataset needs at least one input modality")
        n = check_inputs(inputs)
        check_targets(targets, n)
        sizes = {k: int(v.shape[0]) for k, v in {**inputs, **(meta or {})}.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all inputs, targets and meta must have the same length, got {sizes}")
        if not isinstance(classes, Mapping):
            raise TypeError(f"classes must be a dict {{task: [class names]}}, got {type(classes).__name__}")
        missing = sorted(set(targets) - set(classes))
        if missing:
            raise ValueError(f"class names missing for task(s) {missing}")
        for t in targets:
            if isinstance(classes[t], str) or len(classes[t]) < 1:
                raise ValueError(f"classes[{t!r}] must be a list of class names, got {classes[t]!r}")
        if check_values:
            check_label_values(targets, {t: len(classes[t]) for t in targets})
            check_finite(inputs)
            if vocab is not None and "text" in inputs and inputs["text"].numel():
                lo, hi = (int(v) for v in torch.stack([inputs["text"].min(), inputs["text"].max()]).tolist())
                if lo < 0 or hi >= len(vocab):
                    raise ValueError(f"inputs['text'] holds token id {lo if lo < 0 else hi}, outside the "
                                     f"vocabulary [0, {len(vocab)}); encode captions with this dataset's vocab")
        self.inputs: dict[str, Tensor] = dict(inputs)
        self.targets: dict[str, Tensor] = dict(targets)
        self.classes: dict[str, list[str]] = {t: list(classes[t]) for t in targets}
        self.vocab = vocab
        self.name = name
        self.meta: dict[str, Tensor] = dict(meta or {})

    @property
    def modalities(self) -> list[str]:
        return sorted(self.inputs)

    @property
    def tasks(self) -> list[str]:
        return list(self.targets)

    @property
    def device(self) -> torch.device:
        return next(iter(self.inputs.values())).device

    def num_classes(self, task: str) -> int:
        return len(self.classes[_names(task, self.tasks, "task")[0]])

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {list(v.shape[1:])}" for k, v in self.inputs.items())
        return (f"MultimodalDataset({self.name!r}, n={len(self)}, inputs: {shapes}; tasks: "
                f"{ {t: len(c) for t, c in self.classes.items()} }; device={self.device})")

    def __getitem__(self, idx: int | slice | Tensor | Sequence[int]) -> Batch:
        """A ``Batch`` of the given samples; an int gives a batch of one (tensors keep the batch dim)."""
        n = len(self)
        if isinstance(idx, int):
            if not -n <= idx < n:
                raise IndexError(f"index {idx} is out of range for a dataset of {n} samples")
            idx = slice(idx % n, idx % n + 1)
        if isinstance(idx, slice):
            return Batch({k: v[idx] for k, v in self.inputs.items()}, {k: v[idx] for k, v in self.targets.items()})
        index = torch.as_tensor(idx, dtype=torch.int64, device=self.device)
        if index.numel() and (int(index.max()) >= n or int(index.min()) < -n):
            raise IndexError(f"indices must lie in [-{n}, {n}), got [{int(index.min())}, {int(index.max())}]")
        index = index % n
        return Batch({k: v.index_select(0, index) for k, v in self.inputs.items()},
                     {k: v.index_select(0, index) for k, v in self.targets.items()})

    def subset(self, index: Tensor | slice, name: str | None = None) -> MultimodalDataset:
        """A dataset of the given samples (same classes and vocab)."""
        b = self[index]
        meta = {k: v[index] if isinstance(index, slice) else v.index_select(0, torch.as_tensor(index, device=v.device))
                for k, v in self.meta.items()}
        return MultimodalDataset(b.inputs, b.targets, self.classes, self.vocab, name or self.name, meta,
                                 check_values=False)

    def select(self, modalities: str | Sequence[str] | None = None,
               tasks: str | Sequence[str] | None = None) -> MultimodalDataset:
        """The same samples with only some modalities and/or tasks (tensors are shared, not copied)."""
        mods = _names(modalities, list(self.inputs), "modality")
        tks = _names(tasks, list(self.targets), "task")
        return MultimodalDataset({m: self.inputs[m] for m in mods}, {t: self.targets[t] for t in tks},
                                 self.classes, self.vocab if "text" in mods else None, self.name, self.meta,
                                 check_values=False)

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """The dataset on ``device`` (returns ``self`` when it is already there)."""
        device = torch.device(device)
        if self.device == device or (device.index is None and self.device.type == device.type):
            return self
        return MultimodalDataset({k: v.to(device) for k, v in self.inputs.items()},
                                 {k: v.to(device) for k, v in self.targets.items()},
                                 self.classes, self.vocab, self.name, {k: v.to(device) for k, v in self.meta.items()},
                                 check_values=False)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                drop_last: bool = False) -> Iterator[Batch]:
        """Yield ``Batch``es on the data's device. With ``shuffle``, one permutation per call from ``seed`` (or
        from torch's global RNG when ``seed`` is None): the same order the engine draws for that seed
        (:func:`mmcourse.batch.tensor_batches` is the one iterator both use)."""
        _check_batch_size(batch_size)
        if seed is None:
            seed = int(torch.randint(2**62, (1,)).item())
        for batch, _ in tensor_batches(self.inputs, self.targets, batch_size, shuffle=shuffle, seed=seed,
                                       drop_last=drop_last):
            yield batch

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        _check_batch_size(batch_size)
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def as_torch_dataset(self) -> TensorDictDataset:
        """A ``torch.utils.data.Dataset`` of ``(inputs, targets)`` per sample; batch it with ``collate_batches``."""
        return TensorDictDataset(self.inputs, self.targets)


class TensorDictDataset(Dataset):
    """Per-sample ``(inputs: dict, targets: dict)`` view of dict-of-tensor data, for ``DataLoader``."""

    def __init__(self, inputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]):
        self.n = check_inputs(inputs)
        check_targets(targets, self.n)
        self.inputs, self.targets = dict(inputs), dict(targets)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {k: v[i] for k, v in self.inputs.items()}, {k: v[i] for k, v in self.targets.items()}


def collate_batches(items: Sequence[tuple[Mapping[str, Tensor], Mapping[str, Tensor]]]) -> Batch:
    """``DataLoader`` collate function: stack per-sample dicts into one ``Batch``.

    Variable-length ``text`` (1-D id tensors of different lengths) is padded with 0 to the longest.
    """
    if not items:
        raise ValueError("collate_batches got an empty list of samples")
    inputs: dict[str, Tensor] = {}
    for k in items[0][0]:
        parts = [it[0][k] for it in items]
        if parts[0].dim() == 1 and len({p.shape[0] for p in parts}) > 1:
            inputs[k] = torch.nn.utils.rnn.pad_sequence(parts, batch_first=True, padding_value=0)
        else:
            inputs[k] = torch.stack(parts)
    targets = {k: torch.stack([torch.as_tensor(it[1][k]) for it in items]) for k in items[0][1]}
    return Batch(inputs, targets)


def concat_datasets(parts: Sequence[MultimodalDataset], name: str = "concat") -> MultimodalDataset:
    """Concatenate datasets with the same modalities, tasks and classes."""
    if not parts:
        raise ValueError("concat_datasets needs at least one dataset")
    first = parts[0]
    for p in parts[1:]:
        if sorted(p.inputs) != sorted(first.inputs) or p.classes != first.classes:
            raise ValueError(f"concat_datasets needs the same modalities, tasks and classes: {first!r} vs {p!r}")
        if first.vocab is not None and p.vocab is not None and p.vocab.itos != first.vocab.itos:
            raise ValueError(f"concat_datasets: {p.name!r} encodes text with another vocabulary than {first.name!r}")
    return MultimodalDataset({k: torch.cat([p.inputs[k] for p in parts]) for k in first.inputs},
                             {k: torch.cat([p.targets[k] for p in parts]) for k in first.targets},
                             first.classes, first.vocab, name, check_values=False)
