"""A pre-norm Transformer encoder block built from the course's multi-head attention (chapter 07).

``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``. Normalising before each sub-layer keeps the residual path an
identity, which trains stably without warm-up tricks. Sub-modules are named like ``nn.TransformerEncoderLayer``
(``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``), so weights copy over with ``load_state_dict``
and the block equals ``nn.TransformerEncoderLayer(norm_first=True, batch_first=True, activation="gelu")``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.layers.attention import MultiHeadAttention


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: ``block(x [B, L, D], key_mask [B, L] | None) -> [B, L, D]``.

    Args:
        dim: model width D. heads: attention heads (D must be divisible by it).
        mlp_ratio: hidden width of the feed-forward part is ``mlp_ratio * D``.
        dropout: on the attention weights and after each sub-layer.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.dim = dim
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Apply the block; with ``need_weights`` also return head-averaged attention ``[B, L, L]``."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"TransformerBlock expects x of shape [B, L, {self.dim}], got {tuple(x.shape)}")
        a, w = self.self_attn(self.norm1(x), key_mask=key_mask, is_causal=is_causal, need_weights=need_weights)
        x = x + self.dropout(a)
        x = x + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))
        return (x, w) if need_weights else x
