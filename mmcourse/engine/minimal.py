"""The one plain training loop: the loop a reader writes first (chapter 01), reused by chapters 02–03 and as the
benchmark's baseline (chapter 13).

Shuffled mini-batches, a loss, an optimiser step and ``loss.item()`` every step: nothing resident on the
device, no autocast, no compile. ``fit`` is the full engine; chapter 13 measures what it adds over this loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mmcourse.batch import Batch
from mmcourse.losses import TaskCrossEntropy


class _Rows(Dataset):
    """Per-sample ``(inputs, targets)`` dicts of dict-of-tensor data (what a DataLoader indexes and collates)."""

    def __init__(self, inputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]):
        self.inputs, self.targets = dict(inputs), dict(targets)
        self.n = int(next(iter(self.inputs.values())).shape[0])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {k: v[i] for k, v in self.inputs.items()}, {k: v[i] for k, v in self.targets.items()}


def _accuracy(model: nn.Module, data: Any, device: torch.device) -> float:
    from mmcourse.engine.evaluation import evaluate

    if isinstance(data, tuple):
        x, y = data
        with torch.no_grad():
            was = model.training
            model.eval()
            pred = torch.cat([model(xb.to(device)).argmax(-1) for xb in x.split(512)])
            model.train(was)
        return float((pred == y.to(device)).float().mean())
    return float(evaluate(model, data, batch_size=512, device=device)["acc"])


def plain_step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    """One plain optimiser step: clear the gradients, back-propagate ``loss``, update the parameters."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def plain_loop(model: nn.Module, data: Any, val: Any = None, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
               seed: int = 0, optimizer: str = "adam", device: torch.device | str | None = None,
               dataloader: bool = False, timer: Any = None) -> list[float]:
    """Train ``model`` with the plainest loop; return per epoch the validation accuracy (with ``val``) or the
    mean training loss. The model is left in eval mode.

    Args:
        data, val: ``(x [N, ...], y [N])`` tensors (a classifier ``model(x) -> logits``, cross-entropy), or a
            dataset with ``inputs``/``targets`` dicts (``model(inputs) -> {task: logits}``, per-task
            cross-entropy).
        optimizer: ``adam`` or ``adamw`` at ``lr``.
        device: where to train (default: where the model is); batches are moved there every step.
        dataloader: batch through a ``torch.utils.data.DataLoader`` (one ``__getitem__`` per sample, then
            collation) over CPU copies, as the benchmark's baseline does; otherwise index batches of a
            ``randperm`` drawn from ``seed`` (chapter 01's loop).
        timer: an object with ``start()``/``stop()``, given one interval per epoch (training only).
    """
    if optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer={optimizer!r}; use 'adam' or 'adamw'")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    pairs = isinstance(data, tuple)
    if pairs:
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
        rows: Dataset = torch.utils.data.TensorDataset(x.cpu(), y.cpu()) if dataloader else None
    else:
        x, y = data.inputs, data.targets
        rows = _Rows({k: v.cpu() for k, v in x.items()}, {k: v.cpu() for k, v in y.items()}) if dataloader else None
    n = int(y.shape[0]) if pairs else len(rows) if rows is not None else int(next(iter(y.values())).shape[0])
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(rows, batch_size=batch_size, shuffle=True, generator=g) if dataloader else None
    model.to(device)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW)(model.parameters(), lr=lr)
    task_loss = TaskCrossEntropy()
    out: list[float] = []
    for _ in range(epochs):
        model.train()
        if timer is not None:
            timer.start()
        running, steps = 0.0, 0
        batches = loader if loader is not None else (
            (idx, None) for idx in torch.randperm(n, generator=g).split(batch_size))
        for a, b in batches:
            if loader is None:  # index batches: rows of the tensors where they are
                idx = a.to(x.device if pairs else next(iter(x.values())).device)
                a, b = (x[idx], y[idx]) if pairs else ({k: v[idx] for k, v in x.items()},
                                                       {k: v[idx] for k, v in y.items()})
            if pairs:
                loss = F.cross_entropy(model(a.to(device)), b.to(device))
            else:
                inputs = {k: v.to(device) for k, v in a.items()}
                targets = {k: v.to(device) for k, v in b.items()}
                loss = task_loss(model(inputs), Batch(inputs, targets))[0]
            plain_step(opt, loss)
            running += loss.item()  # the habit that makes the CPU wait for the GPU every step
            steps += 1
        if timer is not None:
            timer.stop()
        out.append(_accuracy(model, val, device) if val is not None else running / max(steps, 1))
    model.eval()
    return out


def train_minibatch(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
                    seed: int = 0) -> nn.Module:
    """Chapter 01's loop on ``x [N, ...]``, ``y [N]`` (int64 labels): :func:`plain_loop` with Adam; returns the
    model in eval mode."""
    plain_loop(model, (x, y), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=x.device)
    return model
