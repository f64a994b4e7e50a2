"""Cross-modal attention fusion in the style of MulT (Tsai et al. 2019) (chapter 9).

``uses_tokens = True``: ``MultimodalModel`` hands this fusion each encoder's ``tokens(x)`` ``[B, L_m, D_m]``
instead of pooled features (a ``[B, D_m]`` input counts as a single token). For every target modality ``t``,
its tokens are the *queries* and the tokens of all other modalities are the *keys and values*: each image patch
can look for the caption word or the sound frame that explains it. A block is pre-norm cross-attention plus a
feed-forward layer, both residual; the target's updated tokens are averaged, and the per-target vectors are
concatenated in sorted order (``out_dim = dim * M``).

Missing modalities: a missing source is masked out of the keys, and a learned ``[NULL]`` key is always there
("nothing here worth reading"). A target whose sources are *all* missing attends to its own tokens (and the
null key) instead: attending to the null key alone would give every such sample the same attention output, and
a model trained with both modalities then sees a nearly constant vector and guesses (chance accuracy with one
modality missing). A missing target contributes zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.fusion.basic import check_feats, presence, sorted_dims
from mmcourse.layers.attention import MultiHeadAttention


class CrossModalBlock(nn.Module):
    """``x + Attn(LN(x), LN(ctx))`` then ``+ FFN``: queries from ``x [B, Lq, D]``, keys from ``ctx [B, Lk, D]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.ff = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x: Tensor, ctx: Tensor, key_mask: Tensor | None = None, need_weights: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        kv = self.norm_kv(ctx)
        a, w = self.attn(self.norm_q(x), kv, kv, key_mask=key_mask, need_weights=need_weights)
        x = x + a
        return x + self.ff(self.norm_ff(x)), w


class CrossAttentionFusion(nn.Module):
    """Each modality's tokens attend to all other modalities' tokens; pooled and concatenated: ``[B, dim * M]``.

    Args:
        dims: ``{modality: D_m}`` (token widths).
        dim: common width (divisible by ``heads``). heads: attention heads. dropout: attention dropout.
    """

    uses_tokens = True

    def __init__(self, dims: Mapping[str, int], dim: int = 64, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.dims = sorted_dims(dims, "CrossAttentionFusion")
        if len(self.dims) < 2:
            raise ValueError(f"CrossAttentionFusion needs at least two modalities (one attends to another), "
                             f"got {list(self.dims)}")
        if dim % heads != 0:
            raise ValueError(f"CrossAttentionFusion: dim={dim} must be divisible by heads={heads}")
        self.dim, self.out_dim = dim, dim * len(self.dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.dims.items()})
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.randn(dim) * 0.02) for m in self.dims})
        self.null_key = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleDict({m: CrossModalBlock(dim, heads, dropout=dropout) for m in self.dims})

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None,
                need_weights: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Fused ``[B, dim * M]``; with ``need_weights`` also ``{target: attention [B, L_t, 1 + sum L_s + L_t]}``
        (key 0 is ``[NULL]``, then the other modalities' tokens in sorted order, then the target's own tokens,
        which get weight only in samples where every other modality is missing)."""
        check_feats(feats, self.dims, "CrossAttentionFusion", tokens=True)
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        ref = feats[sorted(feats)[0]]
        b = ref.shape[0]
        toks = {}
        for n in names:
            if n in feats:
                x = feats[n] if feats[n].dim() == 3 else feats[n].unsqueeze(1)  # [B, L_m, D_m]
                toks[n] = self.proj[n](x) + self.modality_embed[n]  # [B, L_m, dim]
        null = self.null_key.to(ref.dtype).expand(b, 1, -1)
        outs, weights = [], {}
        for j, t in enumerate(names):
            if t not in toks:
                outs.append(ref.new_zeros(b, self.dim))
                continue
            ctx, keep = [null], [mask.new_ones(b, 1)]
            sources = mask.new_zeros(b, 1)  # [B, 1]: how many other modalities each sample has
            for i, s in enumerate(names):
                if s != t and s in toks:
                    ctx.append(toks[s])
                    keep.append(mask[:, i:i + 1].expand(b, toks[s].shape[1]))
                    sources = sources + mask[:, i:i + 1]
            ctx.append(toks[t])  # a target with no source present attends to its own tokens instead
            keep.append((sources == 0).to(mask.dtype).expand(b, toks[t].shape[1]))
            h, w = self.blocks[t](toks[t], torch.cat(ctx, 1), torch.cat(keep, 1) > 0, need_weights)
            outs.append(h.mean(1) * mask[:, j:j + 1])  # [B, dim], zero where the target is missing
            if need_weights:
                weights[t] = w
        fused = torch.cat(outs, dim=-1)  # [B, dim * M]
        return (fused, weights) if need_weights else fused


