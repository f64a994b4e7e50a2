"""Freezing and unfreezing parameters by name pattern or by module, with clear errors for typos.

Chapter 12 freezes a pretrained encoder for a linear probe and unfreezes it stage by stage for gradual
unfreezing. A pattern is a parameter-name prefix (``"encoders.image"`` covers every parameter under it) or a
glob (``"*.bn*.weight"``); a pattern that matches no parameter raises, naming the nearest prefixes, since a
silently ignored typo would leave the model trainable.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from mmcourse.layers.params import count_parameters  # noqa: F401  (re-exported: mmcourse.transfer.count_parameters)

Selector = str | nn.Module


def _matches(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + ".")


def _prefixes(model: nn.Module, depth: int = 2) -> list[str]:
    return sorted({".".join(n.split(".")[:depth]) for n, _ in model.named_parameters()})


def select_parameters(model: nn.Module, selectors: Selector | Sequence[Selector]) -> list[str]:
    """Names of ``model``'s parameters picked by name patterns and/or sub-modules (in model order).

    Raises:
        ValueError: a pattern matches no parameter, or a module is not part of ``model`` (or has no
            parameters).
    """
    if isinstance(selectors, (str, nn.Module)):
        selectors = [selectors]
    if not selectors:
        raise ValueError("nothing to select: give a name pattern (e.g. 'encoders.image') or a module")
    named = list(model.named_parameters())
    by_id = {id(p): n for n, p in named}
    chosen: set[str] = set()
    for sel in selectors:
        if isinstance(sel, nn.Module):
            names = [by_id[id(p)] for p in sel.parameters() if id(p) in by_id]
            if not names:
                raise ValueError(f"module {type(sel).__name__} has no parameters inside this "
                                 f"{type(model).__name__} (is it part of the model?)")
        elif isinstance(sel, str):
            names = [n for n, _ in named if _matches(n, sel)]
            if not names:
                raise ValueError(f"pattern {sel!r} matches no parameter of {type(model).__name__}; "
                                 f"parameter names start with: {_prefixes(model)}")
        else:
            raise TypeError(f"select by a name pattern (str) or an nn.Module, got {type(sel).__name__}")
        chosen.update(names)
    return [n for n, _ in named if n in chosen]


def _set(model: nn.Module, selectors: Selector | Sequence[Selector] | None, flag: bool) -> list[str]:
    names = [n for n, _ in model.named_parameters()] if selectors is None else select_parameters(model, selectors)
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(flag)
    return names


def freeze(model: nn.Module, selectors: Selector | Sequence[Selector] | None = None) -> list[str]:
    """Stop gradients for the selected parameters (all of them when ``selectors`` is None); return their names.

    Frozen batch-norm layers still update their running statistics in ``train()`` mode; call
    :func:`set_batchnorm_eval` when that is not wanted.
    """
    return _set(model, selectors, False)


def unfreeze(model: nn.Module, selectors: Selector | Sequence[Selector] | None = None) -> list[str]:
    """Let gradients flow again for the selected parameters (all when None); return their names."""
    return _set(model, selectors, True)


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that currently receive gradients."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def set_batchnorm_eval(modules: nn.Module | Iterable[nn.Module]) -> int:
    """Put every batch-norm layer inside ``modules`` in eval mode (frozen statistics); return how many."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    n = 0
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.eval()
                n += 1
    return n


class FreezeBatchNorm:
    """A ``fit`` callback: keep every batch-norm layer of the model in eval mode (its pretrained statistics)
    during training — wise when fine-tuning on a handful of samples, whose batch statistics are poor.

    ``fit`` puts the model in train mode at the start of every epoch and then calls this hook.
    """

    def on_epoch_begin(self, state: Any) -> None:
        set_batchnorm_eval(state.model)
