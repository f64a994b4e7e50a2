"""Feature extraction to tensors and linear probes: the fast way to ask "how good are these features?".

Chapter 12 runs a frozen encoder once over the data (``extract_features``), keeps the features as a tensor,
and fits a linear classifier on them (``linear_probe``, the course's one probe fitter from ``mmcourse.probe``)
for every label budget and seed in a second — far cheaper than pushing images through the encoder again.
``labels_per_class`` draws the small labelled subsets (1, 5, 20, … labels per class) the chapter compares.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.batch import iterate
from mmcourse.probe import LinearProbe, linear_probe

__all__ = ["LinearProbe", "extract_features", "labels_per_class", "linear_probe"]


@torch.no_grad()
def extract_features(encoder: nn.Module, data: object, modality: str, *, batch_size: int = 512,
                     device: torch.device | str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``encoder`` (in eval mode) over ``data.inputs[modality]``; return ``(features [N, D], targets)``.

    ``data`` is anything the engine can iterate (a dataset with ``inputs``/``targets``, an iterable of
    ``Batch``). Features and targets come back on the encoder's device, in data order.
    """
    if device is None:
        p = next(iter(encoder.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    was = encoder.training
    encoder.eval().to(device)
    feats, targets = [], {}
    try:
        for batch in iterate(data, batch_size):
            batch = batch.to(device)
            if modality not in batch.inputs:
                raise KeyError(f"the data has no {modality!r} input; it has {sorted(batch.inputs)}")
            feats.append(encoder(batch.inputs[modality]).float())  # [B, D]
            for t, y in batch.targets.items():
                targets.setdefault(t, []).append(y)
    finally:
        encoder.train(was)
    if not feats:
        raise ValueError("extract_features got no batches: the data is empty")
    return torch.cat(feats), {t: torch.cat(v) for t, v in targets.items()}


def labels_per_class(y: Tensor, k: int, *, seed: int = 0, num_classes: int | None = None) -> Tensor:
    """Indices of ``k`` random samples of every class in ``y`` (a balanced label budget), sorted.

    Raises:
        ValueError: ``k`` < 1, or some class has fewer than ``k`` samples (the budget is larger than the data).
    """
    if k < 1:
        raise ValueError(f"labels per class must be >= 1, got {k}")
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    counts = torch.bincount(y.cpu(), minlength=c)
    if int(counts.min()) < k:
        poor = [i for i in range(c) if int(counts[i]) < k]
        raise ValueError(f"a budget of {k} labels per class is larger than the data: classes {poor} have only "
                         f"{[int(counts[i]) for i in poor]} samples (smallest class: {int(counts.min())})")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)  # a random order, then the first k of each class in it
    ys = y.cpu()[order]
    sorted_cls, pos = torch.sort(ys, stable=True)
    first = torch.searchsorted(sorted_cls, torch.arange(c))
    rank = torch.arange(len(ys)) - first[sorted_cls]  # rank of each sample within its class
    keep = order[pos[rank < k]]
    return keep.sort().values.to(y.device)
