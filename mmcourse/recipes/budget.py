"""Scratch vs linear probe vs fine-tuning vs discriminative learning rates, across label budgets and seeds.

Chapter 12's main experiment in one call: ``budget_curve`` trains every method on ``k`` labels per class for
each budget ``k`` and seed, and returns one row per run; ``summarise`` gives mean ± std and
``plot_budget_curve`` draws accuracy against labels per class with error bars (one std over seeds).
``finetune`` is linear probe, then fine-tune ("LP-FT"): every run trains through ``fit``, fine-tuning with
``transfer``'s pieces — discriminative param groups as the optimiser, ``FreezeBatchNorm`` and
``GradualUnfreezing`` as callbacks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mmcourse.engine import History, evaluate, fit
from mmcourse.models import ModelSpec, build_model
from mmcourse.palette import PALETTE
from mmcourse.runtime import pick_device
from mmcourse.transfer.finetune import GradualUnfreezing, discriminative_param_groups
from mmcourse.transfer.freeze import FreezeBatchNorm, Selector
from mmcourse.transfer.probe import extract_features, labels_per_class, linear_probe

METHODS = ("scratch", "probe", "finetune", "discriminative")


def _epochs_for(steps: int, n: int, batch_size: int) -> int:
    return max(1, math.ceil(steps / math.ceil(n / batch_size)))


def budget_curve(pretrained: nn.Module, make_scratch: Callable[[], nn.Module], train: Any, test: Any, *,
                 task: str, modality: str, budgets: Sequence[int], seeds: Sequence[int],
                 layers: Sequence[str] | None = None, methods: Sequence[str] = METHODS, steps: int = 40,
                 batch_size: int = 32, lr: float = 3e-3, finetune_lr: float = 1e-3, decay: float = 0.3,
                 device: torch.device | str | None = None) -> list[dict[str, Any]]:
    """Test accuracy of each method for ``k`` labels per class (``k`` in ``budgets``) and each seed.

    Args:
        pretrained: the source encoder (copied for every run, never changed).
        make_scratch: builds a fresh encoder of the same kind for the ``scratch`` baseline.
        train, test: ``MultimodalDataset``s with ``task`` among their targets and ``modality`` among inputs.
        layers: the encoder's stages from the input upwards (names inside the encoder) for discriminative
            learning rates; required for ``discriminative``.
        steps: optimiser steps per run (the same for every budget, so small budgets are not under-trained).
        decay: learning-rate factor per stage going down (``discriminative``).
        Fine-tuning starts from the linear probe's head ("LP-FT"), so a few noisy steps cannot wreck the
        pretrained features through a random head; batch norm keeps its pretrained statistics.
        device: default ``pick_device()``.

    Returns:
        Rows ``{"method", "labels_per_class", "seed", "acc"}``.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    if "discriminative" in methods and not layers:
        raise ValueError("discriminative learning rates need layers=[stage names from the input upwards]")
    device = torch.device(device) if device is not None else pick_device()
    train = train.select(modalities=modality, tasks=task)
    test = test.select(modalities=modality, tasks=task)
    c = train.num_classes(task)
    y = train.targets[task]
    for k in budgets:  # fail before any training when a budget is too large
        labels_per_class(y, k, num_classes=c)
    rows: list[dict[str, Any]] = []
    feats, _ = extract_features(pretrained, train, modality, device=device)
    if "probe" in methods:
        test_feats, test_y = extract_features(pretrained, test, modality, device=device)
    for seed in seeds:
        for k in budgets:
            idx = labels_per_class(y, k, seed=seed, num_classes=c)
            sub = train.subset(idx)
            bs = min(batch_size, len(idx))
            epochs = _epochs_for(steps, len(idx), bs)
            probe = linear_probe(feats[idx.to(feats.device)], y[idx].to(feats.device), num_classes=c,
                                 reference=feats)
            for method in methods:
                torch.manual_seed(seed)
                if method == "probe":
                    acc = probe.accuracy(test_feats, test_y[task])
                else:
                    enc = make_scratch() if method == "scratch" else copy.deepcopy(pretrained)
                    model = build_model(ModelSpec(classes={task: c}), {modality: enc})
                    if method != "scratch":  # linear probe, then fine-tune: start from a head that fits
                        model.heads[task] = probe.to_linear()
                    if method == "scratch":
                        fit(model, sub, epochs=epochs, lr=lr, batch_size=bs, device=device, seed=seed, progress=False)
                    else:
                        groups = [f"encoders.{modality}.{n}" for n in layers] if method == "discriminative" else None
                        finetune(model, sub, epochs=epochs, lr=finetune_lr if groups is None else lr,
                                 layers=groups, decay=decay, batch_size=bs, device=device, seed=seed)
                    acc = evaluate(model, test, device=device)["acc"]
                rows.append({"method": method, "labels_per_class": k, "seed": seed, "acc": acc})
    return rows


def finetune(model: nn.Module, train: Any, val: Any = None, *, epochs: int, lr: float = 1e-3,
             layers: Sequence[Selector | Sequence[Selector]] | None = None, decay: float = 1.0,
             gradual: Sequence[Selector | Sequence[Selector]] | None = None, weight_decay: float = 0.0,
             batch_size: int = 128, device: torch.device | str | None = None, seed: int = 0,
             freeze_batchnorm: bool = True) -> History:
    """Fine-tune ``model`` on ``train`` with ``fit``.

    With ``layers`` and ``decay < 1`` the learning rates are discriminative (``discriminative_param_groups``
    as the optimiser); with ``gradual`` the listed stages start frozen and thaw one per epoch, top first
    (``GradualUnfreezing``). Batch-norm layers keep their pretrained statistics unless
    ``freeze_batchnorm=False`` (``FreezeBatchNorm``): tiny fine-tuning batches give poor statistics.
    """
    groups = (discriminative_param_groups(model, layers, lr=lr, decay=decay, weight_decay=weight_decay)
              if layers else [{"params": list(model.parameters()), "lr": lr, "weight_decay": weight_decay}])
    callbacks: list[Any] = [GradualUnfreezing(model, gradual)] if gradual else []
    if freeze_batchnorm:
        callbacks.append(FreezeBatchNorm())
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ValueError("nothing to fine-tune: every parameter is frozen")
    return fit(model, train, val, optimizer=torch.optim.AdamW(groups, lr=lr), callbacks=callbacks, epochs=epochs,
               lr=lr, batch_size=batch_size, device=device, seed=seed, progress=False)


def summarise(rows: Sequence[dict[str, Any]], key: str = "acc") -> dict[tuple[str, int], tuple[float, float]]:
    """``{(method, labels_per_class): (mean, std over seeds)}`` (std 0 for a single seed)."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["labels_per_class"]), []).append(float(r[key]))
    out = {}
    for g, v in groups.items():
        t = torch.tensor(v, dtype=torch.float64)
        out[g] = (t.mean().item(), t.std().item() if len(v) > 1 else 0.0)
    return out


def plot_budget_curve(rows: Sequence[dict[str, Any]], ax: Any = None, chance: float | None = None):
    """Accuracy vs labels per class (log x axis), one line per method, error bars = 1 std over seeds."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    stats = summarise(rows)
    methods = [m for m in METHODS if any(k[0] == m for k in stats)]
    for i, m in enumerate(methods):
        ks = sorted(k for (mm, k) in stats if mm == m)
        mean = [stats[(m, k)][0] for k in ks]
        std = [stats[(m, k)][1] for k in ks]
        ax.errorbar(ks, mean, yerr=std, marker="o", capsize=3, color=PALETTE[i % len(PALETTE)], label=m)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("labels per class")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
