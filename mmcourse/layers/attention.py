"""Attention from scratch: scaled dot-product attention with padding/causal masks, and multi-head attention.

Chapter 07 writes these and compares them with ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention``.
Mask convention (the course's, as in the multimodal contract): a boolean mask is True where a position takes
part (a real token), so a caption's mask is simply ``text != 0``. Note ``nn.MultiheadAttention`` uses the
opposite convention for ``key_padding_mask`` (True = ignore); pass ``~key_mask`` there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_mask(length: int, device: torch.device | str | None = None) -> Tensor:
    """Bool ``[L, L]``: position ``i`` may attend to ``j <= i`` (True on and below the diagonal)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def _check_mask(mask: Tensor, expect: tuple[int, ...], name: str, hint: str) -> None:
    if mask.dim() != len(expect) or any(m not in (1, e) for m, e in zip(mask.shape, expect)):
        raise ValueError(f"{name} must have shape {expect} ({hint}), got {tuple(mask.shape)}")


def attention_weights(q: Tensor, k: Tensor, attn_mask: Tensor | None = None, key_mask: Tensor | None = None,
                      is_causal: bool = False, scale: float | None = None) -> Tensor:
    """Softmax attention weights ``[..., Lq, Lk]`` for queries ``q [..., Lq, E]`` and keys ``k [..., Lk, E]``.

    Args:
        attn_mask: bool (True = may attend) or float (added to the scores), broadcastable to ``[..., Lq, Lk]``.
        key_mask: bool ``[B, Lk]``, True at real keys; padded keys get zero weight. ``q`` is ``[B, ..., Lq, E]``.
        is_causal: also forbid attending to later positions.
        scale: defaults to ``1 / sqrt(E)``.

    A query that may attend to no key at all gets all-zero weights (and so a zero output), as in torch.
    """
    if q.dim() < 2 or k.dim() != q.dim() or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must be [..., L, E] with the same rank and E, got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}")
    Lq, Lk = q.shape[-2], k.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
    allowed: Tensor | None = None
    if attn_mask is not None:
        _check_mask(attn_mask, tuple(q.shape[:-2]) + (Lq, Lk) if attn_mask.dim() == q.dim() else (Lq, Lk),
                    "attn_mask", "broadcastable to [..., Lq, Lk]")
        if attn_mask.dtype == torch.bool:
            allowed = attn_mask
        else:
            scores = scores + attn_mask
    if key_mask is not None:
        expect = (q.shape[0], Lk)
        if key_mask.dim() != 2 or tuple(key_mask.shape) != expect:
            raise ValueError(f"key_mask must have shape [B, Lk] = {expect} (True = real token), "
                             f"got {tuple(key_mask.shape)}")
        km = key_mask.to(torch.bool).reshape(q.shape[0], *([1] * (q.dim() - 3)), 1, Lk)  # [B, ..., 1, Lk]
        allowed = km if allowed is None else allowed & km
    if is_causal:
        cm = causal_mask(max(Lq, Lk), q.device)[:Lq, :Lk]
        allowed = cm if allowed is None else allowed & cm
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    low = scores.dtype in (torch.float16, torch.bfloat16)  # softmax in fp32 under autocast, then back
    weights = torch.softmax(scores.float() if low else scores, dim=-1).to(scores.dtype)
    if allowed is not None:
        weights = weights.nan_to_num(0.0)  # rows with no allowed key: softmax of all -inf is NaN -> 0
    return weights


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                                 key_mask: Tensor | None = None, is_causal: bool = False, dropout_p: float = 0.0,
                                 scale: float | None = None, return_weights: bool = False
                                 ) -> Tensor | tuple[Tensor, Tensor]:
    """``softmax(q k^T / sqrt(E) + mask) v``; equal to ``F.scaled_dot_product_attention`` for the same masks.

    Shapes: ``q [..., Lq, E]``, ``k [..., Lk, E]``, ``v [..., Lk, Ev]`` -> ``[..., Lq, Ev]`` (and the weights
    ``[..., Lq, Lk]`` if ``return_weights``). Masks as in :func:`attention_weights`.
    """
    if v.dim() != k.dim() or v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v must be [..., Lk, Ev] matching k {tuple(k.shape)}, got {tuple(v.shape)}")
    w = attention_weights(q, k, attn_mask, key_mask, is_causal, scale)
    w_used = F.dropout(w, p=dropout_p) if dropout_p > 0 else w
    out = w_used @ v
    return (out, w) if return_weights else out


def fused_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                    key_mask: Tensor | None = None, is_causal: bool = False, dropout_p: float = 0.0) -> Tensor:
    """:func:`scaled_dot_product_attention` through torch's fused kernel ``F.scaled_dot_product_attention``
    (flash / memory-efficient attention on a GPU): the same masks and the same result, without materialising
    the weights. ``q``, ``k``, ``v`` are ``[B, h, L, E]``. A query with no key allowed gets a zero output (as
    in the explicit version), not the kernel's NaN: such rows attend everywhere, then are zeroed.
    """
    if attn_mask is None and key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
    Lq, Lk = q.shape[-2], k.shape[-2]
    allowed: Tensor | None = None
    bias: Tensor | None = None
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            allowed = attn_mask
        else:
            bias = attn_mask.to(q.dtype)
    if key_mask is not None:
        if key_mask.dim() != 2 or tuple(key_mask.shape) != (q.shape[0], Lk):
            raise ValueError(f"key_mask must have shape [B, Lk] = {(q.shape[0], Lk)} (True = real token), "
                             f"got {tuple(key_mask.shape)}")
        km = key_mask.to(torch.bool).reshape(q.shape[0], *([1] * (q.dim() - 3)), 1, Lk)  # [B, 1, 1, Lk]
        allowed = km if allowed is None else allowed & km
    if is_causal:
        cm = causal_mask(max(Lq, Lk), q.device)[:Lq, :Lk]
        allowed = cm if allowed is None else allowed & cm
    dead = None
    if allowed is not None:
        dead = ~allowed.any(-1, keepdim=True)  # [..., Lq, 1]: queries with no key to attend to
        allowed = allowed | dead
        mask = allowed if bias is None else bias.masked_fill(~allowed, float("-inf"))
    else:
        mask = bias
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    return out if dead is None else out.masked_fill(dead, 0.0)


class MultiHeadAttention(nn.Module):
    """Multi-head attention equal to ``nn.MultiheadAttention(dim, heads, batch_first=True)`` with copied weights.

    Parameters are named as torch names them (``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so
    ``ours.load_state_dict(theirs.state_dict())`` works. ``forward(query, key=None, value=None, key_mask=None,
    attn_mask=None, is_causal=False, need_weights=False)`` returns ``(out [B, Lq, D], weights or None)``;
    the weights are averaged over heads ``[B, Lq, Lk]`` like torch's default.

    ``fused=True`` asks for speed: the attention runs through :func:`fused_attention` (torch's
    ``F.scaled_dot_product_attention`` kernel) whenever the weights are not requested; the result equals the
    explicit version (the tests check it, with masks). The default keeps the explicit maths the chapter builds.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, bias: bool = True, fused: bool = False):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim, self.heads, self.dropout, self.fused = dim, heads, dropout, fused
        self.head_dim = dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim)) if bias else None
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)  # [B, h, L, d]

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                key_mask: Tensor | None = None, attn_mask: Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.shape[-1] != self.dim:
                raise ValueError(f"{name} must have shape [B, L, {self.dim}], got {tuple(t.shape)}")
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q = self._split(F.linear(query, w_q, b_q))
        k = self._split(F.linear(key, w_k, b_k))
        v = self._split(F.linear(value, w_v, b_v))
        p = self.dropout if self.training else 0.0
        if self.fused and not need_weights:
            out, w = fused_attention(q, k, v, attn_mask=attn_mask, key_mask=key_mask, is_causal=is_causal,
                                     dropout_p=p), None
        else:
            out, w = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, key_mask=key_mask,
                                                  is_causal=is_causal, dropout_p=p, return_weights=True)
        B, _, Lq, _ = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(B, Lq, self.dim))  # [B, Lq, D]
        return out, (w.mean(1) if need_weights and w is not None else None)
