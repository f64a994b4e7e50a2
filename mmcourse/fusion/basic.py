"""The simplest fusions: identity (a unimodal model) and concatenation (early/intermediate fusion).

Chapter 0 and 4–7 use ``IdentityFusion`` for unimodal models; chapter 8 starts from ``ConcatFusion``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class IdentityFusion(nn.Module):
    """Pass through the features of the single modality a unimodal model has."""

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        if len(feats) != 1:
            raise ValueError(f"IdentityFusion takes exactly one modality, got {sorted(feats)}; "
                             "use a real fusion (e.g. ConcatFusion) for several")
        return next(iter(feats.values()))


class ConcatFusion(nn.Module):
    """Concatenate per-modality features in sorted modality order: ``[B, sum(D_m)]``.

    A missing modality (absent key, or ``present[m]`` False) is replaced by zeros of its width, so the
    model still runs; ``dims`` gives those widths.
    """

    def __init__(self, dims: Mapping[str, int]):
        super().__init__()
        self.dims = dict(sorted(dims.items()))
        self.out_dim = sum(self.dims.values())

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        unknown = sorted(set(feats) - set(self.dims))
        if unknown:
            raise KeyError(f"ConcatFusion got modalities {unknown} it was not built for; known: {list(self.dims)}")
        ref = next(iter(feats.values()))
        parts = []
        for m, d in self.dims.items():
            if m not in feats:
                parts.append(ref.new_zeros(ref.shape[0], d))
                continue
            x = feats[m]
            if x.shape[-1] != d:
                raise ValueError(f"ConcatFusion expected {m} features of width {d}, got shape {tuple(x.shape)}")
            if present is not None and m in present:
                x = x * present[m].to(x.dtype).unsqueeze(-1)
            parts.append(x)
        return torch.cat(parts, dim=-1)  # [B, sum(D_m)]
