"""Gated fusion: a gated multimodal unit (GMU, Arevalo et al. 2017) for any number of modalities (chapter 9).

Where weighted fusion learns one weight per modality for the whole data set, a gate looks at the sample:
``h_m = tanh(W_m x_m)`` and ``g = softmax_m(U [x_1; ...; x_M])`` per feature, so each sample (and each output
feature) decides how much to trust each modality — a noisy image can be down-weighted for that image only.
With two modalities and a sigmoid gate this is the original GMU: ``z h_1 + (1 - z) h_2``. A missing modality
gets gate ``-inf`` (weight 0), so the present ones share the whole weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.fusion.basic import check_feats, filled, presence, sorted_dims


class GatedFusion(nn.Module):
    """``sum_m g_m ⊙ tanh(W_m x_m)`` with per-sample, per-feature gates ``g = softmax_m(...)``: ``[B, dim]``.

    Args:
        dims: ``{modality: D_m}``.
        dim: output width (default: the largest ``D_m``).
    """

    def __init__(self, dims: Mapping[str, int], dim: int | None = None):
        super().__init__()
        self.dims = sorted_dims(dims, "GatedFusion")
        self.out_dim = dim or max(self.dims.values())
        self.proj = nn.ModuleDict({m: nn.Linear(d, self.out_dim) for m, d in self.dims.items()})
        self.gate = nn.Linear(sum(self.dims.values()), self.out_dim * len(self.dims))

    def gates(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        """Gate values ``[B, M, dim]`` (sum to 1 over the modalities; 0 for missing ones)."""
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        xs = filled(feats, mask, names, self.dims)
        return self._gates(xs, mask)

    def _gates(self, xs: list[Tensor], mask: Tensor) -> Tensor:
        b, m = mask.shape
        scores = self.gate(torch.cat(xs, dim=-1)).view(b, m, self.out_dim)  # [B, M, dim]
        scores = scores.masked_fill(mask.unsqueeze(-1) == 0, float("-inf"))
        return scores.softmax(dim=1).nan_to_num(0.0)  # all missing: 0 instead of NaN

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        check_feats(feats, self.dims, "GatedFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        xs = filled(feats, mask, names, self.dims)
        h = torch.stack([torch.tanh(self.proj[n](x)) for n, x in zip(names, xs)], dim=1)  # [B, M, dim]
        return (self._gates(xs, mask) * h).sum(1)  # [B, dim]
