"""Hidden tests of chapter 7's exercises (Transformer encoders): attention's backward pass, the causal mask,
rotary position embeddings, what tells attention the order (experiment and interpret), and fixing a layer that
misuses ``nn.MultiheadAttention`` (find the bug).

The learner's notebook is ``solutions/07_transformer_encoders.ipynb`` (``exercises/`` holds the blank copy).
The backward pass is compared with autograd's gradients of the chapter's attention; the rotary embedding with
the formula of Su et al. (2021) and with the property it exists for (scores that depend on relative positions
only); the fixed layer with ``nn.MultiheadAttention`` given the learner's weights; the experiment's answer with
what the notebook's run shows (the notebook asserts that its run agrees).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmcourse.grading.choices import check_choices
from mmcourse.grading.probing import build_module
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


# --- 07.rotary: rotary position embedding (Su et al., 2021), the neighbour of the chapter's sinusoidal table --

# shapes [..., L, D]: L != D everywhere; one plain [L, D], one [B, h, L, D] as attention uses it, a long one.
ROTARY_CASES = ((6, 8), (2, 3, 10, 16), (1, 17, 4))
# readings a learner may have written (see _rotary_ref), and what to tell them
ROTARY_READINGS = {
    "halves": "pair neighbouring features (x[..., 2i], x[..., 2i+1]), as the chapter's table interleaves sin and "
              "cos, not feature i with feature i + D/2",
    "wrong way": "the pairs turn the wrong way: (a, b) -> (a cos - b sin, a sin + b cos)",
    "i/D": "theta_i = 10000^(-2i/D) for pair i (2i is the pair's even column), not 10000^(-i/D)",
}


def _rotary_ref(x: torch.Tensor, halves: bool = False, sign: float = 1.0, exponent: float = 2.0) -> torch.Tensor:
    """RoPE of x [..., L, D] (in double), and the readings a learner may have written instead."""
    length, dim = x.shape[-2:]
    pos = torch.arange(length, dtype=torch.double)[:, None]  # [L, 1]
    theta = 10000.0 ** (-torch.arange(dim // 2, dtype=torch.double) * exponent / dim)  # [D/2]
    angle = pos * theta  # [L, D/2]
    cos, sin = angle.cos(), sign * angle.sin()
    xd = x.double()
    a, b = (xd[..., : dim // 2], xd[..., dim // 2:]) if halves else (xd[..., 0::2], xd[..., 1::2])
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if halves:
        return torch.cat([ra, rb], dim=-1)
    return torch.stack([ra, rb], dim=-1).flatten(-2)  # interleave back: ra0, rb0, ra1, rb1, ...


def _rotary_call(fn, x: torch.Tensor, what: str) -> torch.Tensor:
    got = fn(x.clone())
    assert isinstance(got, torch.Tensor), f"{what}: return a tensor, got {type(got).__name__}"
    assert tuple(got.shape) == tuple(x.shape), \
        f"{what} has shape {tuple(got.shape)}, expected {tuple(x.shape)}: rotating keeps the shape"
    assert got.is_floating_point(), f"{what}: return a float tensor, got dtype {got.dtype}"
    assert torch.isfinite(got).all(), f"{what} contains NaN or inf"
    return got.double()


def _near(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.double(), b.double(), atol=1e-4, rtol=1e-4)


def _pairs(t: torch.Tensor) -> torch.Tensor:
    return t[..., 0::2] ** 2 + t[..., 1::2] ** 2  # [..., L, D/2]: squared length of each pair


@register("07.rotary", points=2, timeout=30,
          hint="a, b = x[..., 0::2], x[..., 1::2]; angle [L, D/2] = p * 10000^(-2i/D) for p = 0..L-1; "
               "out[..., 0::2] = a cos - b sin, out[..., 1::2] = a sin + b cos")
def _rotary(fn):
    g = torch.Generator().manual_seed(21)
    for n, shape in enumerate(ROTARY_CASES):
        length, dim = shape[-2:]
        x = torch.randn(shape, generator=g)
        what = f"rotary(x {list(shape)})"
        got = _rotary_call(fn, x, what)
        if _near(got, x + sinusoidal_table(length, dim)):
            raise AssertionError(f"{what}: you added the sinusoidal table; rotary embedding rotates each pair "
                                 "of features by an angle and adds nothing")
        variants = {"halves": _rotary_ref(x, halves=True), "wrong way": _rotary_ref(x, sign=-1.0),
                    "i/D": _rotary_ref(x, exponent=1.0)}
        want = _rotary_ref(x)
        for name, bad in variants.items():
            if _near(got, bad) and not _near(want, bad):
                raise AssertionError(f"{what}: {ROTARY_READINGS[name]}")
        if not torch.allclose(_pairs(got), _pairs(x.double()), atol=1e-4, rtol=1e-4):
            raise AssertionError(f"{what}: a rotation keeps the length of every pair (x[..., 2i], x[..., 2i+1]), "
                                 "yours changes it: the rotated pair is (a cos - b sin, a sin + b cos)")
        if not torch.allclose(got[..., 0, :], x[..., 0, :].double(), atol=1e-5):
            raise AssertionError(f"{what}: position 0 turns by the angle 0 * theta_i = 0, so row 0 must come back "
                                 "unchanged (positions count 0, 1, ..., L-1 along the second-to-last axis)")
        if n == 0:  # what RoPE is for: a score depends on the two positions only through their offset
            q, k = torch.randn(2, dim, generator=g)
            rq = _rotary_call(fn, q.repeat(length, 1), f"rotary(q repeated [{length}, {dim}])")
            rk = _rotary_call(fn, k.repeat(length, 1), f"rotary(k repeated [{length}, {dim}])")
            s = rq @ rk.T  # [L, L]: s[m, n] = the score of q at position m against k at position n
            if not torch.allclose(s[1:, 1:], s[:-1, :-1], atol=1e-4, rtol=1e-4):
                raise AssertionError("the same q at position m and k at position n should score "
                                     "rotary(q)_m . rotary(k)_n depending on m - n only; yours changes along a "
                                     "diagonal: the angle must be p * theta_i, linear in the position p")
        p, i = min(3, length - 1), 1
        expect = (f"row {p}, pair {i} should be x's pair turned by {p} * 10000^(-{2 * i}/{dim}) = "
                  f"{p * 10000 ** (-2 * i / dim):.4f} rad")
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=lambda m, e=expect, w=what: f"{w}: {e}. {m}")


# --- 07.order_experiment: what tells attention the order (experiment and interpret) --------------------------

ORDER_KEYS = ("no positions", "sinusoidal positions", "no positions, causal mask")
ORDER_OPTIONS = ("learns", "chance")
# What the exercise's run shows: without positions and without a mask, self-attention followed by a mean over
# positions is a function of the *set* of tokens, so "is A before B?" stays at 50 % exactly as the chapter's
# permutation argument predicts (the test set comes in A/B-swapped twins: exactly 0.500 on five seeds);
# sinusoidal positions fix it; and so does a causal mask alone, because position i then sees exactly the i + 1
# tokens up to it — the mask itself breaks the symmetry (Haviv et al., 2022). Both reach 0.97-1.00 in the 60
# training steps on five seeds.
ORDER_ANSWER = {"no positions": "chance", "sinusoidal positions": "learns", "no positions, causal mask": "learns"}


@register("07.order_experiment", points=2, timeout=10, kind="experiment",
          hint="run the training cell and read its table ('learns' above 70 % test accuracy, 'chance' near 50 %); "
               "then ask, for each model, whether swapping two tokens can change its output")
def _order_experiment(fn):
    check_choices(fn(), answer=ORDER_ANSWER, options=ORDER_OPTIONS, fn_name="order_answers",
                  what="{model: 'learns' or 'chance'}", cases="for the three models",
                  advice="read the table again "
                  "('learns' = above 70 % test accuracy, 'chance' = near 50 %) — and mind that a "
                  "mask is information too")


# --- 07.fix_self_attention: nn.MultiheadAttention on [B, L, D] with the course's mask (find the bug) -----------

SELF_ATTN_DIMS = (8, 2)  # (dim, heads)
# (lengths of a batch): B != L except once (the square batch the colleague tested with); each batch has one
# caption without padding, so a mask read the wrong way round shows.
SELF_ATTN_CASES = ((5, 2, 4), (4, 4, 1, 3), (2, 7), (6, 6, 6))


def _attn_input(lengths: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, L, D] (random values in the padding too) and the course's mask [B, L], True at real tokens."""
    g = torch.Generator().manual_seed(300 + seed)
    length = max(lengths)
    x = torch.randn(len(lengths), length, SELF_ATTN_DIMS[0], generator=g)
    return x, torch.arange(length)[None] < torch.tensor(lengths)[:, None]


def probe_self_attention(cls, cases) -> dict:
    """Build the learner's layer, report its attention's weights and settings and its outputs on padded batches."""
    layer = build_module(cls, SELF_ATTN_DIMS, 0, f"SelfAttention{SELF_ATTN_DIMS}")
    if isinstance(layer, dict):
        return layer
    attn = getattr(layer, "attn", None)
    if not isinstance(attn, nn.MultiheadAttention):
        return {"error": "keep the attention in self.attn (an nn.MultiheadAttention) as in the colleague's layer"}
    layer.eval()
    seen: dict = {"state": {k: v.detach().clone() for k, v in attn.state_dict().items()},
                  "batch_first": bool(attn.batch_first), "outs": []}
    for seed, lengths in enumerate(cases):
        x, mask = _attn_input(lengths, seed)
        try:
            with torch.no_grad():
                seen["outs"].append(layer(x, mask))
        except NotImplementedError:  # a blank exercise: "not implemented", not a failure
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen["outs"].append(f"{type(e).__name__}: {str(e)[:200]}")
    return seen


def _mha(state: dict, batch_first: bool) -> nn.MultiheadAttention:
    m = nn.MultiheadAttention(*SELF_ATTN_DIMS, batch_first=batch_first)
    m.load_state_dict(state)
    return m.eval()


def _try_mha(state: dict, x: torch.Tensor, batch_first: bool, pad: torch.Tensor | None) -> torch.Tensor | None:
    """A candidate reading of the layer (None where its shapes do not even fit)."""
    try:
        with torch.no_grad():
            return _mha(state, batch_first)(x, x, x, key_padding_mask=pad)[0]
    except Exception:  # noqa: BLE001 - a reading that cannot run is no candidate
        return None


@register("07.fix_self_attention", points=2, timeout=30, kind="find-the-bug",
          hint="nn.MultiheadAttention(dim, heads, batch_first=True) for x [B, L, D]; torch's key_padding_mask is "
               "True at the padding, the course's mask True at real tokens: pass key_padding_mask=~mask")
def _fix_self_attention(fn):
    seen = fn.probe(probe_self_attention, SELF_ATTN_CASES)
    assert isinstance(seen, dict), "the hidden test could not build your layer"
    if "error" in seen:
        raise AssertionError(seen["error"])
    try:
        ref = _mha(seen["state"], batch_first=True)
    except RuntimeError:
        raise AssertionError(f"self.attn should be nn.MultiheadAttention{SELF_ATTN_DIMS} with its default "
                             f"projections; its weights are {sorted(seen['state'])}") from None
    state = seen["state"]
    for seed, (lengths, got) in enumerate(zip(SELF_ATTN_CASES, seen["outs"])):
        x, mask = _attn_input(lengths, seed)
        b, length = mask.shape
        what = f"layer(x [B={b}, L={length}, D={x.shape[2]}], mask with lengths {list(lengths)})"
        if isinstance(got, str):
            raise AssertionError(f"{what} raised {got}. nn.MultiheadAttention reads its input as [L, B, D] unless "
                                 "it is built with batch_first=True, and it wants key_padding_mask as [B, L]")
        assert isinstance(got, torch.Tensor), f"{what}: return a tensor [B, L, D], got {type(got).__name__}"
        assert tuple(got.shape) == tuple(x.shape), f"{what} has shape {tuple(got.shape)}, expected {tuple(x.shape)}"
        real = mask[..., None].expand_as(x)  # compare at the real tokens (padded rows are free)
        if not torch.isfinite(got[real]).all():
            raise AssertionError(f"{what}: NaN at real tokens — torch's key_padding_mask is True at the positions "
                                 "to *ignore*, the course's mask True at real tokens: a caption without padding "
                                 "then has no key left; pass key_padding_mask=~mask")
        with torch.no_grad():
            want = ref(x, x, x, key_padding_mask=~mask)[0]
        readings = {
            "batch_first": (_try_mha(state, x, False, ~mask.T) if b != length else _try_mha(state, x, False, ~mask),
                            "the layer attends across the batch: nn.MultiheadAttention reads x [B, L, D] as "
                            "[L, B, D] unless built with batch_first=True"),
            "inverted": (_try_mha(state, x, True, mask),
                         "each token attends only to the padding: torch's key_padding_mask is True at the "
                         "positions to ignore, so pass ~mask"),
            "unmasked": (_try_mha(state, x, True, None),
                         "the padding takes part in the attention: pass key_padding_mask=~mask"),
        }
        for bad, message in readings.values():
            if bad is not None and bad.shape == got.shape and torch.allclose(got[real], bad[real], atol=1e-5) \
                    and not torch.allclose(bad[real], want[real], atol=1e-5):
                raise AssertionError(f"{what}: {message}")
        if b == length and not seen["batch_first"]:
            tm = _try_mha(state, x, False, ~mask)
            if tm is not None and torch.allclose(got[real], tm[real], atol=1e-5):
                raise AssertionError(f"{what}: the layer attends across the batch: build nn.MultiheadAttention "
                                     "with batch_first=True")
        torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-4, msg=lambda m, what=what: (
            f"{what}: not self-attention over each caption's real tokens (nn.MultiheadAttention with "
            f"batch_first=True and key_padding_mask=~mask): {m}"))
