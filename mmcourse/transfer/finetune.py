"""Fine-tuning a pretrained model: discriminative (layer-wise decayed) learning rates and gradual unfreezing.

Chapter 11 compares, on the same target task, training from scratch, a linear probe, full fine-tuning (every
parameter at one learning rate), and fine-tuning with smaller learning rates for the layers nearest the
input, which hold the most general features (discriminative learning rates, Howard & Ruder, 2018).
``GradualUnfreezing`` thaws the network from the top down, one stage per epoch (same paper).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmcourse.engine.history import History
from mmcourse.multitask import fit_multitask
from mmcourse.transfer.freeze import Selector, freeze, select_parameters, unfreeze


def discriminative_param_groups(model: nn.Module, layers: Sequence[Selector | Sequence[Selector]], *,
                                lr: float, decay: float = 0.5, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimiser param groups whose learning rate shrinks by ``decay`` per layer going down to the input.

    ``layers`` lists the pretrained stages from the input upwards (name patterns or modules, as in
    :func:`~mmcourse.transfer.freeze.select_parameters`). Every parameter not in ``layers`` (the new head,
    typically) is the top group with learning rate ``lr``; ``layers[-1]`` gets ``lr * decay``,
    ``layers[-2]`` gets ``lr * decay**2``, … Each group has a ``name`` key for logging. Frozen parameters are
    included, so that unfreezing them later trains them at their group's rate.

    Raises:
        ValueError: ``decay`` not in (0, 1], a layer matches nothing, or a parameter is in two layers.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    params = dict(model.named_parameters())
    owner: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for n in select_parameters(model, layer):
            if n in owner:
                raise ValueError(f"parameter {n!r} is in layers {owner[n]} and {i}; layers must not overlap")
            owner[n] = i
    groups = []
    depth = len(layers)
    for i in range(depth):
        names = [n for n, j in owner.items() if j == i]
        groups.append({"params": [params[n] for n in names], "lr": lr * decay ** (depth - i),
                       "weight_decay": weight_decay, "name": f"layer{i}"})
    rest = [p for n, p in params.items() if n not in owner]
    if rest:
        groups.append({"params": rest, "lr": lr, "weight_decay": weight_decay, "name": "top"})
    return groups


class GradualUnfreezing:
    """Freeze ``stages`` now; unfreeze one more stage every ``every`` epochs, the top-most first.

    ``stages`` is ordered from the output down to the input (e.g. ``["encoders.image.proj",
    "encoders.image.features.4", ...]``). Use it as an ``on_epoch_end`` function of ``fit_multitask``:
    after epoch ``k * every`` the first ``k`` stages are trainable. ``unfrozen`` says how many are.
    """

    def __init__(self, model: nn.Module, stages: Sequence[Selector | Sequence[Selector]], every: int = 1):
        if not stages:
            raise ValueError("GradualUnfreezing needs at least one stage")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.stages, self.every, self.unfrozen = list(stages), every, 0
        for s in self.stages:
            freeze(model, s)

    def __call__(self, epoch: int, model: nn.Module) -> None:
        want = min(epoch // self.every, len(self.stages))
        while self.unfrozen < want:
            unfreeze(model, self.stages[self.unfrozen])
            self.unfrozen += 1


def finetune(model: nn.Module, train: object, val: object | None = None, *, epochs: int, lr: float = 1e-3,
             layers: Sequence[Selector | Sequence[Selector]] | None = None, decay: float = 1.0,
             gradual: Sequence[Selector | Sequence[Selector]] | None = None, weight_decay: float = 0.0,
             batch_size: int = 128, device: torch.device | str | None = None, seed: int = 0,
             freeze_batchnorm: bool = True) -> History:
    """Fine-tune every trainable parameter of ``model`` on ``train``.

    With ``layers`` and ``decay < 1`` the learning rates are discriminative (see
    :func:`discriminative_param_groups`); with ``gradual`` the listed stages start frozen and thaw one per
    epoch, top first. Batch-norm layers keep their pretrained statistics unless ``freeze_batchnorm=False``
    (tiny fine-tuning batches give poor statistics). Returns the training ``History`` (from
    :func:`mmcourse.multitask.fit_multitask`).
    """
    if device is not None:
        model.to(device)
    groups = (discriminative_param_groups(model, layers, lr=lr, decay=decay, weight_decay=weight_decay)
              if layers else [{"params": list(model.parameters()), "lr": lr, "weight_decay": weight_decay}])
    callbacks = [GradualUnfreezing(model, gradual)] if gradual else []
    if not any(p.requires_grad for g in groups for p in g["params"]) and not callbacks:
        raise ValueError("nothing to fine-tune: every parameter is frozen")
    opt = torch.optim.AdamW(groups, lr=lr)
    return fit_multitask(model, train, val, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=opt,
                         device=device, seed=seed, freeze_batchnorm=freeze_batchnorm, on_epoch_end=callbacks)
