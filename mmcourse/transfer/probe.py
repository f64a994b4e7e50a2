"""Feature extraction to tensors and linear probes: the fast way to ask "how good are these features?".

Chapter 11 runs a frozen encoder once over the data (``extract_features``), keeps the features as a tensor,
and fits a linear classifier on them (``linear_probe``) for every label budget and seed in a second — far
cheaper than pushing images through the encoder again. ``labels_per_class`` draws the small labelled
subsets (1, 5, 20, … labels per class) the chapter compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.engine.batches import BatchSource


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
        for batch, _ in BatchSource(data, device).epoch(batch_size):
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


@dataclass
class LinearProbe:
    """A linear classifier on standardised frozen features: ``probe(x) -> logits``."""

    mean: Tensor
    std: Tensor
    head: nn.Linear

    def __call__(self, x: Tensor) -> Tensor:
        return self.head((x - self.mean) / self.std)

    def to_linear(self) -> nn.Linear:
        """One ``nn.Linear`` on the raw features equal to this probe (standardisation folded in): the head
        to start fine-tuning from ("linear probe, then fine-tune")."""
        w = self.head.weight / self.std  # [C, D]
        lin = nn.Linear(w.shape[1], w.shape[0]).to(w.device)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(self.head.bias - w @ self.mean)
        return lin

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return (self(x).argmax(-1) == y).float().mean().item()


def linear_probe(x: Tensor, y: Tensor, *, num_classes: int | None = None, weight_decay: float = 1e-3,
                 steps: int = 100, lr: float = 0.05, reference: Tensor | None = None
                 ) -> LinearProbe:
    """Fit a linear classifier on features ``x [N, D]`` with labels ``y [N]`` (full batch, AdamW).

    Features are standardised with the statistics of ``reference`` (e.g. the features of all unlabelled
    training data; default ``x`` itself); ``weight_decay`` (L2 on the weights) keeps the
    probe sane when there are fewer samples than feature dimensions.
    """
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"linear_probe expects x [N, D] and y [N], got {list(x.shape)} and {list(y.shape)}")
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    x = x.detach().float()
    ref = x if reference is None else reference.detach().float()
    if len(ref) > 1:
        mean, std = ref.mean(0), ref.std(0, unbiased=False).clamp_min(1e-3)
    else:
        mean, std = torch.zeros_like(ref[0]), torch.ones_like(ref[0])
    z = (x - mean) / std
    head = nn.Linear(x.shape[1], c).to(x.device)  # zero-initialised: the fit is deterministic
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(head(z), y) + weight_decay * head.weight.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    head.requires_grad_(False)
    return LinearProbe(mean, std, head)
