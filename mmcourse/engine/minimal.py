"""Chapter 01's training loop, for chapters that reuse it on small in-memory tensors (02, 03).

Shuffled mini-batches, cross-entropy, Adam: the loop a reader writes first, kept here so later chapters can
import it instead of copying it. ``fit`` is the full engine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def train_minibatch(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
                    seed: int = 0) -> nn.Module:
    """Train a classifier on ``x [N, ...]``, ``y [N]`` (int64 labels) and return it in eval mode."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(batch_size):
            idx = idx.to(x.device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
