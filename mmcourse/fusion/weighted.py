"""Weighted fusion (the source posts' "加权融合"), and gated fusion's simpler cousin (chapter 9).

Each modality is projected to a common width ``dim`` and the projections are summed with learned weights
``softmax(w)``. The source posts say the weights need a model "trained in advance"; they do not — the weights
are ordinary parameters learned jointly with the rest by back-propagation. A missing modality is left out and
the weights of the present ones are renormalised to sum to one (all missing → zeros).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.fusion.basic import check_feats, filled, presence, sorted_dims


class WeightedFusion(nn.Module):
    """``sum_m a_m * P_m(x_m)`` with ``a = softmax(w)`` over the present modalities: ``[B, dim]``.

    Args:
        dims: ``{modality: D_m}``.
        dim: common width; default the largest ``D_m``. A modality whose width already equals ``dim`` is
            projected too (set ``project=False`` to skip projections when all widths are equal).
        project: learn a linear map per modality (default True).
    """

    def __init__(self, dims: Mapping[str, int], dim: int | None = None, project: bool = True):
        super().__init__()
        self.dims = sorted_dims(dims, "WeightedFusion")
        self.out_dim = dim or max(self.dims.values())
        if not project and any(d != self.out_dim for d in self.dims.values()):
            raise ValueError(f"WeightedFusion(project=False) needs every width equal to dim={self.out_dim}, "
                             f"got {self.dims}")
        self.proj = nn.ModuleDict({m: nn.Linear(d, self.out_dim) if project else nn.Identity()
                                   for m, d in self.dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(self.dims)))  # w: equal weights at the start

    def weights(self, mask: Tensor | None = None) -> Tensor:
        """Fusion weights ``[M]`` (or ``[B, M]`` renormalised over a presence ``mask [B, M]``)."""
        a = self.logits.softmax(0)
        if mask is None:
            return a
        a = a * mask
        return a / a.sum(1, keepdim=True).clamp_min(1e-12)

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        check_feats(feats, self.dims, "WeightedFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        xs = filled(feats, mask, names, self.dims)
        z = torch.stack([self.proj[m](x) for m, x in zip(names, xs)], dim=1)  # [B, M, dim]
        a = self.weights(mask)  # [B, M]
        return (a.unsqueeze(-1) * z).sum(1)  # [B, dim]
