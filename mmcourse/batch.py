"""The multimodal contract at the bottom of the package: ``Batch``, the modality names, masks, and Protocols.

Every chapter speaks it (design.md, "The multimodal contract"):

- a batch is ``Batch(inputs, targets, present=None)`` with ``inputs[modality]`` (``image [B,3,H,W]`` float,
  ``text [B,L]`` int64 with pad id 0, ``audio [B,1,n_mels,frames]`` float, ``video [B,3,T,H,W]`` float),
  ``targets[task]`` int64 ``[B]`` (``IGNORE_INDEX`` = -100 marks "no label for this task") and optional
  ``present[modality]`` bool ``[B]`` (True = available);
- an encoder maps one modality tensor to ``[B, D]``; a token encoder also offers ``tokens(x) -> [B, L, D]``;
- a fusion maps ``{modality: [B, D_m]}`` (or tokens) and ``present`` to ``[B, D_fused]``;
- a data source is anything with ``inputs``/``targets`` dicts of tensors, or ``.batches(...)``.

Bad values are refused where they enter, in words that name the culprit and the fix: ``Batch`` checks its
structure, dtypes, lengths and masks when it is made (free checks: no host synchronisation, so they may run on
every step); :func:`check_label_values` and :func:`check_finite` read values (one host read each) and run where
data enters — dataset construction and loaders — never inside a training step.

Labels: ``IGNORE_INDEX`` (-100) means "this sample has no label for this task" everywhere (losses skip it, the
datasets accept it); any other negative label, or one ``>=`` the task's number of classes, is an error.

This module imports nothing of mmcourse, so data, layers, encoders, fusion, models and the engine can all
build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

MODALITIES = ("image", "text", "audio", "video")
PAD_ID = 0  # text padding id: ``text != PAD_ID`` is the token mask (True = a real token)
IGNORE_INDEX = -100  # a target of -100 means "this sample has no label for this task"


@dataclass
class Batch:
    """One batch: ``inputs[modality]``, ``targets[task]`` and optional ``present[modality]`` (bool ``[B]``)."""

    inputs: dict[str, Tensor]
    targets: dict[str, Tensor]
    present: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        """Refuse a malformed batch now, in words, rather than deep inside a model (shape/dtype checks only)."""
        n = check_inputs(self.inputs, allow_empty=True)
        n = check_targets(self.targets, n)
        if self.present is not None:
            if n is None:
                raise ValueError("a Batch with present masks needs at least one input")
            check_present(self.present, self.inputs)

    def __len__(self) -> int:
        for t in (*self.inputs.values(), *self.targets.values()):
            return int(t.shape[0])
        return 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device``."""
        def move(d: Mapping[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.to(device, non_blocking=non_blocking) for k, v in d.items()}

        return Batch(move(self.inputs), move(self.targets), None if self.present is None else move(self.present))


def text_mask(tokens: Tensor) -> Tensor:
    """Bool ``[B, L]``: True where ``tokens`` holds a real token, False at padding (id 0)."""
    return tokens != PAD_ID


def mask_modalities(inputs: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Zero every sample's modality where ``present[m]`` (bool ``[B]``) is False; text becomes all padding."""
    check_present(present, inputs)
    out = dict(inputs)
    for m, keep in present.items():
        if m in out:
            x = out[m]
            out[m] = x.masked_fill(~keep.view(-1, *([1] * (x.dim() - 1))), 0)
    return out


def keep_mask(batch: int, n_modalities: int, p: float, *, available: Tensor | None = None,
              device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Bool ``[B, M]``: each available entry kept with probability ``1 - p``, at least one kept per row.

    ``available`` (bool ``[B, M]``, default all True) marks modalities that are there at all; a row with none
    available stays all False. Used by modality dropout on inputs (the engine) and on features (fusion).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"modality dropout probability must be in [0, 1), got {p}")
    if available is None:
        available = torch.ones(batch, n_modalities, dtype=torch.bool, device=device)
    u = torch.rand(batch, n_modalities, device=available.device, generator=generator)
    keep = (u >= p) & available
    # rows that lost everything get back one available modality, chosen at random
    rescue = torch.nn.functional.one_hot(torch.where(available, u, -1.0).argmax(1), n_modalities).bool()
    return torch.where(keep.any(1, keepdim=True), keep, rescue & available)


def present_matrix(names: list[str], present: Mapping[str, Tensor] | None, batch: int,
                   device: torch.device) -> Tensor:
    """Bool ``[B, M]`` of ``present`` for ``names`` in order; a modality with no mask counts as present."""
    ones = torch.ones(batch, dtype=torch.bool, device=device)
    old = present or {}
    check_present(old, list(old), batch=batch)  # bool [B] masks (a float 0.5 must not turn into True)
    return torch.stack([old[m].to(device, torch.bool) if m in old else ones for m in names], dim=1)


def shuffled_order(n: int, seed: int, device: torch.device | str | None = None) -> Tensor:
    """The permutation ``[n]`` that ``seed`` stands for, on ``device``.

    Drawn on the CPU and then moved, so one seed gives one order on every device: ``MultimodalDataset.batches``
    and the engine's GPU-resident iterator both use it (a device generator would give another order on a GPU).
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm if device is None else perm.to(device, non_blocking=True)


def _rows(d: Mapping[str, Tensor] | None, lo: int, hi: int, idx: Tensor | None) -> dict[str, Tensor] | None:
    """Rows ``lo:hi`` (views, no copy) or, given a slice ``idx`` of a permutation, the gathered rows."""
    if d is None:
        return None
    if idx is None:
        return {k: v[lo:hi] for k, v in d.items()}
    return {k: v[idx] for k, v in d.items()}  # advanced indexing keeps channels_last (index_select does not)


def tensor_batches(inputs: Mapping[str, Tensor], targets: Mapping[str, Tensor], batch_size: int, *,
                   present: Mapping[str, Tensor] | None = None, shuffle: bool = False, seed: int = 0,
                   drop_last: bool = False, rank: int = 0, world: int = 1) -> Iterator[tuple[Batch, int]]:
    """The one iterator over data held as tensors: ``(batch, size of the global batch)`` for one epoch.

    Batches are index operations on the tensors where they live (the GPU, ideally): no per-sample Python and no
    copy to the host. With ``shuffle`` the order is :func:`shuffled_order` of ``seed``. With ``world > 1``
    each rank gets a contiguous slice of every global batch, so ``world`` ranks together see exactly the
    batches of one process; a final batch smaller than ``world`` is dropped.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    ref = next(iter({**inputs, **targets}.values()))
    n = int(ref.shape[0])
    perm = shuffled_order(n, seed, ref.device) if shuffle else None
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if (drop_last and size < batch_size) or size < world:
            break
        lo, hi = start + rank * size // world, start + (rank + 1) * size // world
        idx = None if perm is None else perm[lo:hi]
        yield Batch(_rows(inputs, lo, hi, idx), _rows(targets, lo, hi, idx), _rows(present, lo, hi, idx)), size


def iterate(data: object, batch_size: int) -> Iterator[Batch]:
    """Batches of any data source, in order: tensors (``inputs``/``targets``), ``.batches(...)`` or an iterable
    of ``Batch``. For code below the engine that only needs to read data once (feature extraction)."""
    inputs, targets = getattr(data, "inputs", None), getattr(data, "targets", None)
    if isinstance(inputs, Mapping) and inputs and isinstance(targets, Mapping):
        for b, _ in tensor_batches(inputs, targets, batch_size, present=getattr(data, "present", None)):
            yield b
    elif hasattr(data, "batches"):
        yield from data.batches(batch_size, shuffle=False)
    elif isinstance(data, Iterable):
        yield from data
    else:
        raise TypeError(f"cannot read batches from {type(data).__name__}: pass a dataset with inputs/targets "
                        "dicts, an object with .batches(...), or an iterable of Batch")


@runtime_checkable
class Encoder(Protocol):
    """Maps one modality tensor to features ``[B, out_dim]``."""

    out_dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class TokenEncoder(Encoder, Protocol):
    """An encoder whose input has positions: also ``tokens(x) -> [B, L, out_dim]`` for attention fusion."""

    def tokens(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Fusion(Protocol):
    """Maps ``{modality: [B, D_m]}`` (or ``[B, L, D_m]`` tokens when ``uses_tokens``) and ``present`` to
    ``[B, out_dim]``, visiting modalities in sorted order."""

    out_dim: int

    def __call__(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor: ...


@runtime_checkable
class TensorData(Protocol):
    """Data held as tensors (``MultimodalDataset``, ``Batch``): the engine keeps it on the device."""

    inputs: Mapping[str, Tensor]
    targets: Mapping[str, Tensor]


@runtime_checkable
class BatchedData(Protocol):
    """Data that batches itself (a loader over files too big for the device)."""

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                drop_last: bool = False) -> Iterator[Batch]: ...


DataSource = TensorData | BatchedData  # or any iterable of Batch (a DataLoader with collate_batches)


# --- checks where values enter -------------------------------------------------------------------------------

FLOAT_MODALITIES = ("image", "audio", "video")  # float inputs (normalised); ``text`` holds integer token ids


class UnknownNameError(KeyError, ValueError):
    """A modality or task name that is not one of the valid names (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def check_names(given: Iterable[str], valid: Iterable[str], what: str) -> None:
    """Raise :class:`UnknownNameError` listing the valid names when ``given`` holds a name not in ``valid``."""
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise UnknownNameError(f"unknown {what} {unknown}; valid names: {sorted(valid)}")


def modality_names(value: object, who: str = "modalities") -> list[str]:
    """``value`` as a list of names; a bare string is refused (it would be read letter by letter)."""
    if isinstance(value, str):
        raise TypeError(f"{who} must be a list of names such as [{value!r}], got the string {value!r}, which "
                        f"would be read as {len(value)} one-letter names; write [{value!r}] or ({value!r},)")
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{who} must be a list or tuple of names, got {type(value).__name__}")
    names = list(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{who} must hold names (strings), got {bad!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{who} names a modality twice: {names}")
    return names


def conversion_hint(name: str, x: Tensor) -> str:
    """How to turn a non-float tensor ``x`` (named ``name``) into the float input a model expects."""
    if x.dtype == torch.uint8:
        return (f"{name} is uint8 (raw pixels 0..255?); convert with x.float() / 255 and normalise each channel "
                "to about zero mean and unit variance")
    if x.dtype == torch.bool:
        return f"{name} is bool; convert with x.float()"
    return f"{name} is {x.dtype}; convert with x.float() (and normalise it)"


def check_inputs(inputs: Mapping[str, Tensor], *, allow_empty: bool = False) -> int | None:
    """Check a dict of modality tensors: types, dtypes, one batch size, one device. Returns the batch size.

    Float modalities (``image``, ``audio``, ``video``) must be floating point, ``text`` integer token ids;
    other names may hold any tensor. No values are read (no host synchronisation).
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a dict {{modality: tensor}}, got {type(inputs).__name__}")
    if not inputs:
        if allow_empty:
            return None
        raise ValueError(f"inputs is empty: give at least one modality, e.g. {{'image': x}} (known: {MODALITIES})")
    sizes, devices = {}, {}
    for m, x in inputs.items():
        if not isinstance(m, str):
            raise TypeError(f"input names must be strings, got {m!r}")
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{m!r}] must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 0:
            raise ValueError(f"inputs[{m!r}] is a scalar; it needs a batch dimension first")
        if m in FLOAT_MODALITIES and not x.is_floating_point():
            raise TypeError(f"inputs[{m!r}] must be a float tensor: " + conversion_hint(m, x))
        if m == "text" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
            raise TypeError(f"inputs['text'] must hold int64 token ids (pad id {PAD_ID}), got {x.dtype}; ids are "
                            "made by a Vocab (vocab.encode); if these are ids stored as floats, use x.long()")
        sizes[m], devices[m] = int(x.shape[0]), x.device
    _same_length(sizes, "inputs")
    if len(set(devices.values())) > 1:
        raise ValueError(f"inputs live on different devices {({m: str(d) for m, d in devices.items()})}; "
                         "move them together (batch.to(device))")
    return next(iter(sizes.values()))


def _same_length(sizes: Mapping[str, int], what: str) -> None:
    if len(set(sizes.values())) > 1:
        got = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"all {what} must have the same length (number of samples, the first dimension); "
                         f"got {got}")


def check_targets(targets: Mapping[str, Tensor], n: int | None = None) -> int | None:
    """Check a dict of task targets: int64 ``[B]`` each, ``B == n`` when ``n`` is given. Returns ``B``.

    Values are not read here (see :func:`check_label_values`).
    """
    if not isinstance(targets, Mapping):
        raise TypeError(f"targets must be a dict {{task: labels}}, got {type(targets).__name__}")
    sizes = {} if n is None else {"the inputs": n}
    for t, y in targets.items():
        if not isinstance(y, Tensor):
            raise TypeError(f"targets[{t!r}] must be a torch.Tensor of int64 class indices, got {type(y).__name__}")
        if y.dim() == 2 and y.shape[1] == 1:
            raise ValueError(f"targets[{t!r}] has shape {list(y.shape)}; labels are one class index per sample, "
                             f"shape [B]: use y.squeeze(1)")
        if y.dim() != 1:
            raise ValueError(f"targets[{t!r}] must be class indices of shape [B], got shape {list(y.shape)}"
                             + ("; one-hot labels? use y.argmax(1)" if y.dim() == 2 else ""))
        if y.dtype != torch.int64:
            how = ("y.argmax(1) if they are one-hot, or y.long() if they are whole numbers" if y.is_floating_point()
                   else "y.long()")
            raise TypeError(f"targets[{t!r}] must be int64 class indices, got {y.dtype}; convert with {how}")
        sizes[f"task {t!r}"] = int(y.shape[0])
    _same_length(sizes, "inputs and targets")
    return next(iter(sizes.values()), None)


def check_present(present: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | Iterable[str], *,
                  batch: int | None = None, device: torch.device | None = None) -> None:
    """Check ``present`` masks: known modality names, bool ``[B]`` tensors on the inputs' device.

    ``inputs`` is the dict of modality tensors (batch size and device are taken from it) or just the valid
    names (then give ``batch`` and ``device`` to check them).
    """
    if not isinstance(present, Mapping):
        raise TypeError(f"present must be a dict {{modality: bool tensor [B]}}, got {type(present).__name__}")
    if isinstance(inputs, Mapping):
        names = list(inputs)
        ref = next(iter(inputs.values()), None)
        if ref is not None:
            batch = int(ref.shape[0]) if batch is None else batch
            device = ref.device if device is None else device
    else:
        names = list(inputs)
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise UnknownNameError(f"present names modalities {unknown} that are not among the inputs; valid names: "
                               f"{sorted(names)} (a typo?)")
    for m, p in present.items():
        if not isinstance(p, Tensor):
            raise TypeError(f"present[{m!r}] must be a bool tensor of shape [B], got {type(p).__name__}; "
                            f"write torch.full((B,), {p!r}) or use evaluate(..., present={{{m!r}: False}})")
        if p.dtype != torch.bool:
            raise TypeError(f"present[{m!r}] must be bool (True = available), got {p.dtype}: a float mask would "
                            "scale features and an int mask multiplies them; convert with mask > 0.5 or mask != 0")
        if p.dim() != 1 or (batch is not None and p.shape[0] != batch):
            fix = "; use mask.squeeze(1)" if p.dim() == 2 and p.shape[1] == 1 else ""
            raise ValueError(f"present[{m!r}] must have shape [B] = [{batch if batch is not None else 'B'}], got "
                             f"{list(p.shape)}{fix}")
        if device is not None and not _same_device(p.device, torch.device(device)):
            raise ValueError(f"present[{m!r}] is on {p.device} but the inputs are on {device}; move it with "
                             f".to({str(device)!r})")


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` count as the same device; ``cuda:0`` and ``cuda:1`` do not."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_label_values(targets: Mapping[str, Tensor], num_classes: Mapping[str, int]) -> None:
    """Every label of task ``t`` is in ``[0, num_classes[t])`` or is ``IGNORE_INDEX`` (-100).

    Reads the values (one host synchronisation per task): call it where data enters, not in a training step.
    """
    for t, y in targets.items():
        if y.numel() == 0 or t not in num_classes:
            continue
        c = int(num_classes[t])
        labelled = y[y != IGNORE_INDEX]
        if labelled.numel() == 0:
            continue
        lo, hi = (int(v) for v in torch.stack([labelled.min(), labelled.max()]).tolist())
        if lo < 0:
            raise ValueError(f"task {t!r} has label {lo}: labels are class indices 0..{c - 1}, or {IGNORE_INDEX} "
                             "(IGNORE_INDEX) for a sample without a label for this task")
        if hi >= c:
            raise ValueError(f"task {t!r} has label {hi} but only {c} classes (labels 0..{c - 1}); are the class "
                             "names complete, or are the labels 1-based?")


def check_finite(inputs: Mapping[str, Tensor], what: str = "inputs") -> None:
    """Every float tensor is finite (no NaN or inf); the error names the modality and counts the bad values.

    Reads the values (one host synchronisation): call it where data enters, not in a training step.
    """
    floats = {m: x for m, x in inputs.items() if x.is_floating_point() and x.numel()}
    if not floats:
        return
    bad = torch.stack([(~torch.isfinite(x)).sum() for x in floats.values()]).tolist()
    for (m, x), nb in zip(floats.items(), bad):
        if nb:
            nan = int(torch.isnan(x).sum())
            raise ValueError(f"{what}[{m!r}] holds {nb} non-finite values ({nan} NaN, {nb - nan} inf) out of "
                             f"{x.numel()}; fix or drop those samples (e.g. torch.nan_to_num) before training")
