"""Contrastive alignment (chapter 10): symmetric InfoNCE with a learnable temperature, and a two-tower model.

Two encoders (any pair of the contract: image–caption, audio–caption, video–caption) are each followed by a
linear projection into a shared ``dim``-wide space, where embeddings are L2-normalised. For a batch of ``B``
matching pairs the similarity matrix ``S = a @ b.T / τ`` has the positives on its diagonal; InfoNCE is the
cross-entropy of picking the diagonal entry, row-wise (a→b) and column-wise (b→a), averaged.

The model speaks the dict contract (``model(inputs) -> {modality_a: za, modality_b: zb}``) and the loss,
:class:`InfoNCELoss`, holds the learned temperature, so ``fit(model, pairs, loss=InfoNCELoss(...))`` trains
both (a loss with parameters is optimised with the model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.batch import Batch


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


def check_pair(a: Tensor, b: Tensor, who: str = "embeddings") -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are both ``[B, D]`` with the same ``B`` and ``D``."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"{who} must be two [B, D] matrices, got shapes {list(a.shape)} and {list(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{who} must pair row i of one with row i of the other: batch sizes differ "
                         f"({a.shape[0]} vs {b.shape[0]})")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{who} must live in the same space: dimensions differ ({a.shape[1]} vs {b.shape[1]}); "
                         "project both to a shared dim first")


def _check_temperature(temperature: float | Tensor) -> None:
    """τ must be one positive number. A tensor on an accelerator is only checked for its size: reading its
    value would stall the GPU every step (``LearnableTemperature`` is positive by construction)."""
    if isinstance(temperature, Tensor):
        if temperature.numel() != 1:
            raise ValueError(f"temperature must be a single number, got shape {list(temperature.shape)}")
        if temperature.device.type != "cpu":
            return
        value = float(temperature.detach())
    else:
        value = float(temperature)
    if not value > 0:
        raise ValueError(f"temperature must be > 0 (it divides the similarities), got {value}")


def similarity_logits(a: Tensor, b: Tensor, temperature: float | Tensor) -> Tensor:
    """``[B, B]`` cosine similarities divided by ``temperature``: entry ``(i, j)`` compares ``a_i`` with ``b_j``."""
    check_pair(a, b)
    _check_temperature(temperature)
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T / temperature  # [B, B]


def info_nce(a: Tensor, b: Tensor, temperature: float | Tensor = 0.07) -> Tensor:
    """Symmetric InfoNCE written out: ``mean_i [logsumexp_j S_ij - S_ii]`` for rows and for columns, averaged.

    ``a`` and ``b`` are ``[B, D]`` with row ``i`` of each a matching pair; they are L2-normalised here.
    Equals ``(F.cross_entropy(S, arange) + F.cross_entropy(S.T, arange)) / 2`` (see the tests).
    """
    s = similarity_logits(a, b, temperature)  # [B, B]
    s = s.float() if s.dtype in (torch.float16, torch.bfloat16) else s  # softmax in at least fp32
    pos = s.diagonal()  # [B]
    loss_ab = (torch.logsumexp(s, dim=1) - pos).mean()  # each a_i picks its b_i among all b
    loss_ba = (torch.logsumexp(s, dim=0) - pos).mean()  # each b_j picks its a_j among all a
    return (loss_ab + loss_ba) / 2


class LearnableTemperature(nn.Module):
    """τ stored as ``log(1/τ)`` (so it stays positive under any gradient step) and clamped to ``[min, max]``.

    ``forward()`` returns the current τ as a 0-d tensor; ``learn=False`` keeps it fixed.
    """

    def __init__(self, init: float = 0.07, min_temperature: float = 0.01, max_temperature: float = 1.0,
                 learn: bool = True):
        super().__init__()
        if not 0 < min_temperature <= init <= max_temperature:
            raise ValueError(f"need 0 < min_temperature <= init <= max_temperature, got "
                             f"{min_temperature}, {init}, {max_temperature}")
        self.min_temperature, self.max_temperature = min_temperature, max_temperature
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init)), requires_grad=learn)

    def forward(self) -> Tensor:
        scale = self.log_scale.clamp(math.log(1 / self.max_temperature), math.log(1 / self.min_temperature))
        return torch.exp(-scale)  # τ = 1 / exp(log_scale)


class ContrastiveModel(nn.Module):
    """Two towers into one space: ``enc_a → proj_a`` and ``enc_b → proj_b``, L2-normalised.

    ``model(inputs)`` returns ``{modalities[0]: [B, dim], modalities[1]: [B, dim]}`` (unit vectors): the dict
    contract, so ``fit`` trains it with :class:`InfoNCELoss`.

    Args:
        enc_a, enc_b: encoders of the contract (``forward(x) -> [B, out_dim]`` and an ``out_dim``).
        dim: width of the shared space.
        modalities: the input keys the two towers read, e.g. ``("image", "text")`` or ``("audio", "text")``.
    """

    def __init__(self, enc_a: nn.Module, enc_b: nn.Module, dim: int, *,
                 modalities: Sequence[str] = ("image", "text")):
        super().__init__()
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"modalities must name two different inputs, got {tuple(modalities)}")
        for name, enc in (("enc_a", enc_a), ("enc_b", enc_b)):
            if not isinstance(getattr(enc, "out_dim", None), int):
                raise ValueError(f"{name} ({type(enc).__name__}) needs an integer `out_dim` attribute")
        self.modalities = tuple(modalities)
        self.enc_a, self.enc_b = enc_a, enc_b
        self.proj_a = nn.Linear(enc_a.out_dim, dim)
        self.proj_b = nn.Linear(enc_b.out_dim, dim)
        self.dim = dim

    def train(self, mode: bool = True) -> ContrastiveModel:
        """Like ``nn.Module.train``, but a fully frozen tower stays in eval mode (no dropout, fixed norms)."""
        super().train(mode)
        for enc in (self.enc_a, self.enc_b):
            if not any(p.requires_grad for p in enc.parameters()):
                enc.eval()
        return self

    def embed_a(self, x: Tensor) -> Tensor:
        """``[B, dim]`` unit vectors of modality a."""
        return F.normalize(self.proj_a(self.enc_a(x)), dim=-1)

    def embed_b(self, x: Tensor) -> Tensor:
        """``[B, dim]`` unit vectors of modality b."""
        return F.normalize(self.proj_b(self.enc_b(x)), dim=-1)

    def forward(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
                ) -> dict[str, Tensor]:
        a, b = self.modalities
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise KeyError(f"ContrastiveModel reads inputs {list(self.modalities)}; the batch lacks {missing} "
                           f"(it has {sorted(inputs)})")
        return {a: self.embed_a(inputs[a]), b: self.embed_b(inputs[b])}

    @torch.no_grad()
    def embed_all(self, data: object, batch_size: int = 512) -> tuple[Tensor, Tensor]:
        """Embeddings ``([N, dim], [N, dim])`` of both modalities of a whole dataset, in eval mode."""
        t = tensors_of(data, self.modalities)
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        xa, xb = t[self.modalities[0]], t[self.modalities[1]]
        za = torch.cat([self.embed_a(xa[i:i + batch_size].to(dev)) for i in range(0, len(xa), batch_size)])
        zb = torch.cat([self.embed_b(xb[i:i + batch_size].to(dev)) for i in range(0, len(xb), batch_size)])
        self.train(was)
        return za, zb


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE between two outputs of a model, at a learned temperature: a loss for ``fit``.

    ``loss(outputs, batch)`` returns ``(info_nce(outputs[a], outputs[b], τ), {"temperature": τ})``; τ is a
    :class:`LearnableTemperature` inside the loss, so ``fit`` optimises it with the model (``learn=False``
    keeps it fixed). Train with ``drop_last=True``: every batch then has the same number of negatives.
    """

    def __init__(self, modalities: Sequence[str] = ("image", "text"), temperature: float = 0.07,
                 learn: bool = True):
        super().__init__()
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"modalities must name two different outputs, got {tuple(modalities)}")
        self.modalities = tuple(modalities)
        self.temperature = LearnableTemperature(temperature, learn=learn)

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch | None = None) -> tuple[Tensor, dict[str, Any]]:
        a, b = self.modalities
        missing = [m for m in self.modalities if m not in outputs]
        if missing:
            raise KeyError(f"InfoNCELoss compares outputs {list(self.modalities)}; the model gave {sorted(outputs)}")
        tau = self.temperature()
        return info_nce(outputs[a], outputs[b], tau), {"temperature": tau.detach()}
