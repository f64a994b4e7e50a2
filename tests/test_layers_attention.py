"""Attention, positional encodings and the Transformer block against their torch twins."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.layers.attention import MultiHeadAttention, attention_weights, causal_mask, scaled_dot_product_attention
from mmcourse.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding, sinusoidal_table
from mmcourse.layers.transformer import TransformerBlock


def _qkv(B=2, H=3, Lq=5, Lk=6, E=8):
    g = torch.Generator().manual_seed(0)
    mk = lambda L: torch.randn(B, H, L, E, generator=g, dtype=torch.double)
    return mk(Lq), mk(Lk), mk(Lk)


def test_sdpa_plain_equals_torch():
    q, k, v = _qkv()
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_sdpa_key_padding_mask_equals_torch():
    q, k, v = _qkv()
    key_mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, key_mask=key_mask), ref)
    w = attention_weights(q, k, key_mask=key_mask)
    assert torch.all(w[1, ..., 3:] == 0) and torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)))


def test_sdpa_causal_and_float_mask_equal_torch():
    q, k, v = _qkv(Lq=6, Lk=6)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True))
    bias = torch.randn(6, 6, dtype=torch.double)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask=bias),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))


def test_sdpa_fully_masked_row_is_zero_like_torch():
    q, k, v = _qkv(Lq=3, Lk=3)
    m = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    out = scaled_dot_product_attention(q, k, v, attn_mask=m)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    assert torch.all(out[..., 0, :] == 0)


def test_sdpa_gradcheck():
    q, k, v = (t[:1, :1, :3, :4].clone().requires_grad_(True) for t in _qkv())
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, is_causal=True), (q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_equals_torch(causal):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention(16, 4).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 7, 16, dtype=torch.double)
    mask = torch.arange(7)[None] < torch.tensor([7, 4, 2])[:, None]
    if causal:
        cm = causal_mask(7)
        ref, ref_w = theirs(x, x, x, attn_mask=~cm, key_padding_mask=~mask)
        out, w = ours(x, key_mask=mask, is_causal=True, need_weights=True)
    else:
        ref, ref_w = theirs(x, x, x, key_padding_mask=~mask)
        out, w = ours(x, key_mask=mask, need_weights=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, ref_w)


def test_cross_attention_equals_torch():
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(8, 2, batch_first=True).double()
    ours = MultiHeadAttention(8, 2).double()
    ours.load_state_dict(theirs.state_dict())
    q, kv = torch.randn(2, 3, 8, dtype=torch.double), torch.randn(2, 5, 8, dtype=torch.double)
    torch.testing.assert_close(ours(q, kv, kv)[0], theirs(q, kv, kv)[0])


def test_transformer_block_equals_torch_prenorm_layer():
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(16, 4, dim_feedforward=64, dropout=0.0, activation="gelu",
                                        batch_first=True, norm_first=True).double()
    ours = TransformerBlock(16, 4, mlp_ratio=4.0).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 16, dtype=torch.double)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    theirs.train()  # the eval fast path returns nested-tensor zeros at padding; compare the plain maths
    ref = theirs(x, src_key_padding_mask=~mask)
    torch.testing.assert_close(ours(x, key_mask=mask), ref)


def test_sinusoidal_table_values():
    pe = sinusoidal_table(50, 16)
    assert pe.shape == (50, 16)
    torch.testing.assert_close(pe[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(pe[0, 1::2], torch.ones(8))
    torch.testing.assert_close(pe[7, 2], torch.sin(torch.tensor(7.0) / 10000 ** (2 / 16)))
    torch.testing.assert_close(pe[7, 3], torch.cos(torch.tensor(7.0) / 10000 ** (2 / 16)))


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEncoding])
def test_positional_adds_table_and_rejects_long_sequences(cls):
    pos = cls(8, max_len=10)
    x = torch.zeros(2, 10, 8)
    torch.testing.assert_close(pos(x)[0], pos.table())
    with pytest.raises(ValueError, match=r"sequence length 11 is longer than the positional table \(max_len=10\)"):
        pos(torch.zeros(2, 11, 8))
    with pytest.raises(ValueError, match=r"\[B, L, 8\].*\(2, 4, 6\)"):
        pos(torch.zeros(2, 4, 6))


def test_bad_masks_and_shapes_raise():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"key_mask must have shape \[B, Lk\] = \(2, 6\).*\(2, 5\)"):
        scaled_dot_product_attention(q, k, v, key_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(5, 6\).*\(6, 6\)"):
        scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(6, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"query must have shape \[B, L, 16\].*\(2, 3, 8\)"):
        MultiHeadAttention(16, 4)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)


@pytest.mark.parametrize("masks", ["none", "key", "bool", "float", "causal", "all", "dead_row"])
def test_fused_attention_equals_the_explicit_version(masks):
    from mmcourse.layers.attention import MultiHeadAttention

    torch.manual_seed(0)
    B, Lq, D = 3, 5, 16
    Lk = Lq if masks in ("causal", "all") else 6
    q, kv = torch.randn(B, Lq, D), torch.randn(B, Lk, D)
    key_mask = torch.ones(B, Lk, dtype=torch.bool)
    key_mask[0, 4:] = False
    kw = {}
    if masks in ("key", "all", "dead_row"):
        kw["key_mask"] = key_mask
    if masks in ("bool", "all"):
        kw["attn_mask"] = torch.rand(Lq, Lk) > 0.3
    if masks == "float":
        kw["attn_mask"] = torch.randn(Lq, Lk)
    if masks in ("causal", "all"):
        kw["is_causal"] = True
    if masks == "dead_row":
        kw["key_mask"] = key_mask.clone()
        kw["key_mask"][1] = False  # sample 1 has no key at all: a zero output, not NaN
    explicit = MultiHeadAttention(D, 4, dropout=0.0)
    fused = MultiHeadAttention(D, 4, dropout=0.0, fused=True)
    fused.load_state_dict(explicit.state_dict())
    key = kv
    a, _ = explicit(q, key, key, **kw)
    b, w = fused(q, key, key, **kw)
    assert w is None
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p1), p2 in zip(explicit.named_parameters(), fused.parameters()):
        assert torch.isfinite(p2.grad).all(), name
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    _, w = fused(q, key, key, need_weights=True, **kw)  # weights asked for: the explicit path gives them
    assert w is not None and w.shape == (B, Lq, key.shape[1])
