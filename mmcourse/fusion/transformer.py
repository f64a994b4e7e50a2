"""A Transformer over one token per modality (chapter 9).

Each modality's pooled features are projected to a common width and become one token, tagged with a learned
modality embedding; a learned ``[FUSE]`` token joins them, a few Transformer blocks (the course's own
``TransformerBlock`` from chapter 7) let every token attend to every other, and the final states — the
``[FUSE]`` token's and each modality's — are the fused vector. Missing modalities are masked out of
attention (and their output slots zeroed); the ``[FUSE]`` token is never masked, so a sample with every
modality missing still gets a finite output.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.fusion.basic import check_feats, filled, presence, sorted_dims
from mmcourse.layers.transformer import TransformerBlock


class TransformerFusion(nn.Module):
    """Self-attention over ``[FUSE]`` + one token per modality.

    Returns the final ``[FUSE]`` state and every modality's final token, concatenated in sorted order
    (``out_dim = dim * (1 + M)``; a missing modality's slot is zero), so each modality also keeps a direct
    path to the head, as in concatenation. ``readout="fuse"`` returns the ``[FUSE]`` state alone (``[B, dim]``).

    Args:
        dims: ``{modality: D_m}``.
        dim: token width (divisible by ``heads``). depth: Transformer blocks. heads: attention heads.
        dropout: dropout inside the blocks. readout: ``"all"`` (default) or ``"fuse"``.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 64, depth: int = 1, heads: int = 4,
                 dropout: float = 0.0, readout: str = "all"):
        super().__init__()
        self.dims = sorted_dims(dims, "TransformerFusion")
        if dim % heads != 0:
            raise ValueError(f"TransformerFusion: dim={dim} must be divisible by heads={heads}")
        if readout not in ("all", "fuse"):
            raise ValueError(f"TransformerFusion: readout must be 'all' or 'fuse', got {readout!r}")
        self.readout = readout
        self.out_dim = dim * (1 + len(self.dims)) if readout == "all" else dim
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.dims.items()})
        self.modality_embed = nn.Parameter(torch.randn(len(self.dims), dim) * 0.02)  # [M, dim]
        self.fuse_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        check_feats(feats, self.dims, "TransformerFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        xs = filled(feats, mask, names, self.dims)
        b = mask.shape[0]
        tok = torch.stack([self.proj[n](x) for n, x in zip(names, xs)], dim=1) + self.modality_embed  # [B, M, dim]
        fuse = self.fuse_token.to(tok.dtype).expand(b, 1, -1)  # [B, 1, dim]
        h = torch.cat([fuse, tok], dim=1)  # [B, 1 + M, dim]
        key_mask = torch.cat([mask.new_ones(b, 1), mask], dim=1) > 0  # [B, 1 + M], True = attend
        for block in self.blocks:
            h = block(h, key_mask=key_mask)
        h = self.norm(h)
        if self.readout == "fuse":
            return h[:, 0]  # [B, dim]
        h = torch.cat([h[:, :1], h[:, 1:] * mask.unsqueeze(-1)], dim=1)  # missing modalities' slots -> 0
        return h.flatten(1)  # [B, (1 + M) * dim]
