"""Tensor fusion (Zadeh et al. 2017) and low-rank tensor fusion (Liu et al. 2018) (chapter 9).

Tensor fusion appends a constant 1 to each modality's features, ``z_m = [x_m; 1]``, and takes the outer
product ``z_1 ⊗ z_2 ⊗ ... ⊗ z_M`` (flattened, ``prod(D_m + 1)`` numbers). Because of the 1s the product holds
every unimodal feature, every pairwise product and every higher-order product: a linear layer on top can model
multiplicative interactions that concatenation cannot. A missing modality is ``z_m = [0; 1]``: its terms vanish
and the lower-order terms of the others remain.

The price is size: ``prod(D_m + 1)`` grows exponentially with the number of modalities. Low-rank fusion never
builds the product: if the weight tensor ``W [out, D_1+1, ..., D_M+1]`` is a sum of ``R`` rank-one terms,
``W = sum_r w_1^r ⊗ ... ⊗ w_M^r`` (per output feature), then ``W · vec(⊗ z_m) = sum_r prod_m (z_m · w_m^r)`` —
``M · R`` small matrix products instead of one huge one. ``full_weight()`` builds ``W`` so the two can be
compared exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.fusion.basic import check_feats, filled, presence, sorted_dims


def with_one(x: Tensor) -> Tensor:
    """``[B, D] -> [B, D + 1]``: append the constant 1."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=-1)


def outer_flat(zs: list[Tensor]) -> Tensor:
    """Flattened outer product of ``[B, D_m]`` tensors in order: ``[B, prod(D_m)]`` (first index slowest)."""
    t = zs[0]
    for z in zs[1:]:
        t = (t.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)  # [B, P * D]
    return t


class TensorFusion(nn.Module):
    """``vec([x_1; 1] ⊗ ... ⊗ [x_M; 1])`` (``prod(D_m + 1)`` wide), optionally followed by a linear map.

    Args:
        dims: ``{modality: D_m}``.
        out_dim: if given, a linear layer maps the product to ``out_dim`` (then ``out_dim`` is the width);
            otherwise the raw product is returned. Keep the ``D_m`` small: the product has ``prod(D_m + 1)``
            entries.
        max_size: refuse products larger than this (a clear error instead of running out of memory).
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int | None = None, bias: bool = True,
                 max_size: int = 1_000_000):
        super().__init__()
        self.dims = sorted_dims(dims, "TensorFusion")
        size = 1
        for d in self.dims.values():
            size *= d + 1
        if size > max_size:
            raise ValueError(f"TensorFusion over {self.dims} has prod(D_m + 1) = {size:,} features (> max_size="
                             f"{max_size:,}); project the features to smaller widths first or use "
                             "LowRankTensorFusion")
        self.product_dim = size
        self.linear = nn.Linear(size, out_dim, bias=bias) if out_dim is not None else None
        self.out_dim = out_dim if out_dim is not None else size

    def product(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        """The flattened outer product ``[B, prod(D_m + 1)]`` (missing modality → ``[0; 1]``)."""
        check_feats(feats, self.dims, "TensorFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)
        return outer_flat([with_one(x) for x in filled(feats, mask, names, self.dims)])

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        t = self.product(feats, present)  # [B, prod(D_m + 1)]
        return self.linear(t) if self.linear is not None else t


class LowRankTensorFusion(nn.Module):
    """``sum_r prod_m ([x_m; 1] @ F_m[r]) + b``: tensor fusion with a rank-``rank`` weight, ``[B, out_dim]``.

    Args:
        dims: ``{modality: D_m}``.
        out_dim: output width.
        rank: number of rank-one terms ``R``.
    """

    def __init__(self, dims: Mapping[str, int], out_dim: int, rank: int = 4, bias: bool = True):
        super().__init__()
        self.dims = sorted_dims(dims, "LowRankTensorFusion")
        if rank < 1 or out_dim < 1:
            raise ValueError(f"LowRankTensorFusion needs rank >= 1 and out_dim >= 1, got {rank}, {out_dim}")
        self.out_dim, self.rank = out_dim, rank
        m = len(self.dims)
        # each product of M factors should have about unit scale: std of a factor entry ~ (D+1)^-1/2
        self.factors = nn.ParameterDict({
            n: nn.Parameter(torch.randn(rank, d + 1, out_dim) * (d + 1) ** -0.5 * rank ** (-0.5 / m))
            for n, d in self.dims.items()})  # F_m: [R, D_m + 1, out]
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        check_feats(feats, self.dims, "LowRankTensorFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)
        out = None
        for n, x in zip(names, filled(feats, mask, names, self.dims)):
            proj = torch.einsum("bd,rdo->bro", with_one(x), self.factors[n])  # [B, R, out]
            out = proj if out is None else out * proj
        out = out.sum(1)  # [B, out]
        return out + self.bias if self.bias is not None else out

    def full_weight(self) -> Tensor:
        """The equivalent full weight ``[out_dim, prod(D_m + 1)]`` for ``TensorFusion(dims, out_dim)``."""
        w = None  # [R, out, P]
        for n in self.dims:
            f = self.factors[n].permute(0, 2, 1)  # [R, out, D+1]
            w = f if w is None else (w.unsqueeze(-1) * f.unsqueeze(2)).flatten(2)
        return w.sum(0)
