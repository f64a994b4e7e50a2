"""The three kinds of transfer from the source posts, each made concrete as one function (chapter 12).

- **parameter transfer**: start the target model from the source model's weights, then train (fine-tune);
- **structure transfer**: reuse the source's architecture, but with fresh random weights;
- **feature transfer**: use the source model, frozen, as a fixed feature extractor (a probe or head on top).

The posts describe all three with the same five steps; the difference is only *what* crosses over: weights,
a blueprint, or outputs.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from mmcourse.transfer.checkpoints import LoadReport, load_pretrained
from mmcourse.transfer.freeze import freeze


def parameter_transfer(source: nn.Module, target: nn.Module, *, prefix: str = "", strict: bool = False
                       ) -> LoadReport:
    """Copy the source's weights into ``target`` (under ``prefix``) and return the :class:`LoadReport`."""
    return load_pretrained(target, source, prefix=prefix, strict=strict)


def reset_parameters(module: nn.Module) -> nn.Module:
    """Re-initialise every sub-module that knows how (``reset_parameters``), in place; returns ``module``."""
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return module


def structure_transfer(source: nn.Module, seed: int | None = None) -> nn.Module:
    """A copy of ``source`` with the same architecture and freshly initialised weights."""
    clone = copy.deepcopy(source)
    if seed is None:
        return reset_parameters(clone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return reset_parameters(clone)


class FrozenFeatures(nn.Module):
    """A frozen copy of an encoder that always runs in eval mode without gradients; keeps ``out_dim``.

    Put it in a ``MultimodalModel`` and only the fusion and heads train (feature transfer).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.out_dim = getattr(encoder, "out_dim", None)
        freeze(self.encoder)
        self.encoder.eval()

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.encoder.eval()  # batch-norm statistics and dropout stay as pretrained
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder(x)

    def tokens(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder.tokens(x)


def feature_transfer(source: nn.Module) -> FrozenFeatures:
    """A frozen, eval-mode copy of ``source`` to use as a fixed feature extractor."""
    return FrozenFeatures(copy.deepcopy(source))
