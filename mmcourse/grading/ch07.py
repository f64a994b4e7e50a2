"""Hidden tests of chapter 7's exercises (Transformer encoders): attention's backward pass, the causal mask,
sinusoidal positions.

The learner's notebook is ``solutions/07_transformer_encoders.ipynb`` (``exercises/`` holds the blank copy).
The backward pass is compared with autograd's gradients of the chapter's attention; the table with the formula
of Vaswani et al.
"""

from __future__ import annotations

import math

import torch

from mmcourse.grading.registry import register
from mmcourse.layers.positional import sinusoidal_table


def _attention_ref(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


# shapes (q, k, v): Lq != Lk and d != dv, so a missing transpose shows; batch and head dims, then none but one.
BACKWARD_CASES = (((2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 4)), ((4, 7, 16), (4, 3, 16), (4, 3, 5)),
                  ((1, 4, 4), (1, 4, 4), (1, 4, 4)))


@register("07.attention_backward", points=2, timeout=30,
          forbid=("backward", "grad", "scaled_dot_product_attention"),
          forbid_note="derive the gradients by hand with tensor operations, not autograd",
          hint="P = softmax(S), S = q k^T / sqrt(d); dV = P^T g; dP = g V^T; dS = P * (dP - (dP * P).sum(-1, "
               "keepdim=True)); dq = dS k / sqrt(d); dk = dS^T q / sqrt(d)")
def _attention_backward(fn):
    g = torch.Generator().manual_seed(7)
    for qs, ks, vs in BACKWARD_CASES:
        q, k, v = (torch.randn(s, generator=g, dtype=torch.double) for s in (qs, ks, vs))
        grad_out = torch.randn(*qs[:-1], vs[-1], generator=g, dtype=torch.double)
        qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
        (_attention_ref(qr, kr, vr) * grad_out).sum().backward()
        with torch.no_grad():  # the backward pass by hand needs no autograd
            got = fn(q.clone(), k.clone(), v.clone(), grad_out.clone())
        what = f"attention_backward(q {list(qs)}, k {list(ks)}, v {list(vs)})"
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError(f"{what}: return the tuple (dq, dk, dv), got {type(got).__name__}")
        for name, t, want in zip(("dq", "dk", "dv"), got, (qr.grad, kr.grad, vr.grad)):
            assert isinstance(t, torch.Tensor), f"{what}: {name} should be a tensor, got {type(t).__name__}"
            assert tuple(t.shape) == tuple(want.shape), \
                f"{what}: {name} has shape {tuple(t.shape)}, expected {tuple(want.shape)} (the shape of {name[1:]})"
        dq, dk, dv = got
        torch.testing.assert_close(dv, vr.grad, msg=lambda m, w=what: f"{w}: dv should be P^T @ grad_out: {m}")
        with torch.no_grad():
            p = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(qs[-1]), dim=-1)
            d_s = p * (grad_out @ v.transpose(-2, -1))  # without the softmax's row term
        if torch.allclose(dq, d_s @ k / math.sqrt(qs[-1]), atol=1e-8):
            raise AssertionError(f"{what}: dq misses the softmax's coupling: each row's weights sum to one, so "
                                 "dS = P * (dP - (dP * P).sum(-1, keepdim=True))")
        if torch.allclose(dq, qr.grad * math.sqrt(qs[-1]), atol=1e-8):
            raise AssertionError(f"{what}: dq is sqrt(d) times too large: the scores are divided by sqrt(d), "
                                 "so dq and dk are too")
        torch.testing.assert_close(dq, qr.grad, msg=lambda m, w=what: f"{w}: dq differs from autograd's: {m}")
        torch.testing.assert_close(dk, kr.grad, msg=lambda m, w=what: f"{w}: dk differs from autograd's: {m}")


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
