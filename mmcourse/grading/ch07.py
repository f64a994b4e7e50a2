"""Hidden tests of chapter 7's exercises (Transformer encoders): attention, the causal mask, sinusoidal positions.

The learner's notebook is ``solutions/07_transformer_encoders.ipynb`` (``exercises/`` holds the blank copy).
Attention is compared with ``F.scaled_dot_product_attention``; the table with the formula of Vaswani et al.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmcourse.grading.registry import register
from mmcourse.layers.positional import sinusoidal_table


def _qkv(seed: int, lq: int = 5, lk: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mk = lambda L: torch.randn(2, 3, L, 8, generator=g, dtype=torch.double)  # [B, heads, L, d]
    return mk(lq), mk(lk), mk(lk)


@register("07.sdpa", points=2, timeout=30,
          hint="scores = q @ k.transpose(-2, -1) / sqrt(d); masked_fill(~mask, -inf); softmax over the last "
               "dim; @ v")
def _sdpa(fn):
    q, k, v = _qkv(0)
    got = fn(q, k, v)
    assert isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}"
    want = F.scaled_dot_product_attention(q, k, v)
    assert tuple(got.shape) == tuple(want.shape), f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    unscaled = torch.softmax(q @ k.transpose(-2, -1), -1) @ v
    if torch.allclose(got, unscaled, atol=1e-6):
        raise AssertionError("the scores are not scaled: divide q @ k^T by sqrt(d), d = q.shape[-1]")
    torch.testing.assert_close(got, want, msg=lambda m: f"attention without a mask differs: {m}")
    real = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    mask = real[:, None, None, :]  # [B, 1, 1, Lk]
    torch.testing.assert_close(fn(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               msg=lambda m: f"with a padding mask (True = keep) the output differs: {m}")
    q, k, v = _qkv(1, 4, 4)
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    torch.testing.assert_close(fn(q, k, v, causal), F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               msg=lambda m: f"with a causal mask the output differs: {m}")


@register("07.causal_mask", points=1, timeout=30,
          hint="torch.ones(L, L, dtype=torch.bool).tril(): True on and below the diagonal")
def _causal_mask(fn):
    for length in (1, 4, 7):
        m = fn(length)
        assert isinstance(m, torch.Tensor), f"return a tensor, got {type(m).__name__}"
        assert m.dtype == torch.bool, f"return a bool mask (True = may attend), got dtype {m.dtype}"
        assert tuple(m.shape) == (length, length), f"causal_mask({length}) has shape {tuple(m.shape)}, " \
                                                   f"expected ({length}, {length})"
        want = torch.ones(length, length, dtype=torch.bool).tril()
        if length > 1 and torch.equal(m, want.T):
            raise AssertionError("the mask is transposed: row i (a query) may see columns j <= i (earlier keys)")
        if torch.equal(m, want.tril(-1)):
            raise AssertionError("a position must also attend to itself: include the diagonal")
        assert torch.equal(m, want), f"causal_mask({length}) is wrong:\n{m.int()}\nexpected\n{want.int()}"


@register("07.sinusoidal_pe", points=2, timeout=30,
          hint="pos [L, 1] times freq = exp(-ln(10000) * arange(0, D, 2) / D); even columns sin, odd columns cos")
def _sinusoidal(fn):
    for max_len, dim in ((10, 8), (50, 16)):
        pe = fn(max_len, dim)
        assert isinstance(pe, torch.Tensor), f"return a tensor, got {type(pe).__name__}"
        assert tuple(pe.shape) == (max_len, dim), f"table shape {tuple(pe.shape)}, expected ({max_len}, {dim})"
        want = sinusoidal_table(max_len, dim)
        pe = pe.float()
        if torch.allclose(pe[:, 0::2], want[:, 1::2], atol=1e-5):
            raise AssertionError("sin and cos are swapped: even columns hold sin, odd columns cos")
        halves = torch.cat([want[:, 0::2], want[:, 1::2]], dim=1)
        if torch.allclose(pe, halves, atol=1e-5):
            raise AssertionError("sines and cosines must interleave (sin in column 2i, cos in 2i+1), "
                                 "not sit in two halves")
        expect = f"pe[7, 2] should be sin(7 / 10000^(2/{dim})) = {math.sin(7 / 10000 ** (2 / dim)):.4f}"
        torch.testing.assert_close(pe, want, atol=1e-5, rtol=1e-4, msg=lambda m, e=expect: f"{e}. {m}")
