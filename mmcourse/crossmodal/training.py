"""A short, vectorised training loop for the cross-modal objectives of chapter 9 (contrastive, captioning).

The engine's ``fit`` is built around classification heads; contrastive alignment and caption generation have
their own losses, so they share this loop instead: the tensors live on the device, every epoch draws one
permutation there and slices it into batches, and the running loss stays a tensor (one host sync per epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

LossFn = Callable[[dict[str, Tensor]], Tensor]


def tensors_of(data: object, keys: Sequence[str]) -> dict[str, Tensor]:
    """Pick ``keys`` from ``data.inputs``/``data.targets`` (a dataset or ``Batch``) or from a plain dict.

    Raises:
        KeyError: a key is missing (the message lists what is there).
        ValueError: the tensors do not all have the same number of rows.
    """
    pools: dict[str, Tensor] = {}
    if isinstance(data, Mapping):
        pools.update(data)
    else:
        pools.update(getattr(data, "targets", None) or {})
        pools.update(getattr(data, "inputs", None) or {})
    missing = [k for k in keys if k not in pools]
    if missing:
        raise KeyError(f"data has no {missing}; it holds {sorted(pools)}")
    out = {k: pools[k] for k in keys}
    rows = {k: int(v.shape[0]) for k, v in out.items()}
    if len(set(rows.values())) != 1:
        raise ValueError(f"all tensors need the same number of rows, got {rows}")
    return out


def train_loop(model: nn.Module, loss_fn: LossFn, tensors: Mapping[str, Tensor], *, epochs: int, lr: float,
               batch_size: int, device: torch.device | str | None = None, weight_decay: float = 0.0,
               seed: int = 0, clip_grad: float | None = 1.0) -> list[float]:
    """Train ``model`` by minimising ``loss_fn(batch)``; return the mean training loss of every epoch.

    Args:
        model: its trainable parameters (``requires_grad``) are optimised with AdamW and a cosine schedule;
            frozen ones stay untouched.
        loss_fn: maps a dict of batch tensors (the same keys as ``tensors``) to a scalar loss.
        tensors: full-size tensors with the same number of rows; moved to ``device`` once.
        epochs, lr, batch_size: as usual; the last incomplete batch is dropped (contrastive losses want
            full batches of negatives), unless the data is smaller than one batch.
        device: defaults to the device of the model's first parameter.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    device = torch.device(device) if device is not None else params[0].device
    model.to(device)
    data = {k: v.to(device) for k, v in tensors.items()}
    n = int(next(iter(data.values())).shape[0])
    bs = min(batch_size, n)
    steps_per_epoch = n // bs
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)  # [N], one small copy per epoch
        total = torch.zeros((), device=device)
        for s in range(steps_per_epoch):
            idx = order[s * bs:(s + 1) * bs]
            loss = loss_fn({k: v[idx] for k, v in data.items()})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(params, clip_grad)
            opt.step()
            sched.step()
            total = total + loss.detach()
        history.append(float(total / steps_per_epoch))  # the one host sync of the epoch
    model.eval()
    return history
