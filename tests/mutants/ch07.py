"""Wrong answers for chapter 07's checks (attention's backward pass, causal mask, rotary positions, what tells
attention the order, the misused nn.MultiheadAttention)."""

import math

import torch
from torch import nn

from mmcourse.grading.ch07 import ORDER_ANSWER, ORDER_KEYS
from mmcourse.layers.positional import sinusoidal_table

from . import Mutant


def _forward(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)


def backward(q, k, v, grad_out, coupling=True, scale_q=True, scale_k=True):
    p = _forward(q, k, v)  # [..., Lq, Lk]
    dv = p.transpose(-2, -1) @ grad_out
    dp = grad_out @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True)) if coupling else p * dp
    c = 1 / math.sqrt(q.shape[-1])
    return ds @ k * (c if scale_q else 1), ds.transpose(-2, -1) @ q * (c if scale_k else 1), dv


def backward_no_coupling(q, k, v, grad_out):
    return backward(q, k, v, grad_out, coupling=False)


def backward_unscaled(q, k, v, grad_out):
    return backward(q, k, v, grad_out, scale_q=False, scale_k=False)


def backward_dk_unscaled(q, k, v, grad_out):
    return backward(q, k, v, grad_out, scale_k=False)


def backward_dv_from_raw_scores(q, k, v, grad_out):
    dq, dk, _ = backward(q, k, v, grad_out)
    return dq, dk, (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).transpose(-2, -1) @ grad_out


def backward_autograd(q, k, v, grad_out):  # right values, but autograd does the work
    with torch.enable_grad():
        qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
        out = _forward(qr, kr, vr) @ vr
        return torch.autograd.grad(out, (qr, kr, vr), grad_out)


def causal_transposed(length):
    return torch.ones(length, length, dtype=torch.bool).triu()


def causal_strict(length):
    return torch.ones(length, length, dtype=torch.bool).tril(-1)


def causal_float(length):
    return torch.ones(length, length).tril()


def _rope(x, halves=False, sign=1.0, start=0, exponent=2, one_freq=False):
    length, dim = x.shape[-2:]
    pos = torch.arange(start, start + length, dtype=torch.float32)[:, None]  # [L, 1]
    theta = 10000 ** (-torch.arange(0, dim, 2, dtype=torch.float32) * (exponent / 2) / dim)
    angle = pos * (torch.ones_like(theta) if one_freq else theta)  # [L, D/2]
    cos, sin = torch.cos(angle), sign * torch.sin(angle)
    a, b = (x[..., : dim // 2], x[..., dim // 2:]) if halves else (x[..., 0::2], x[..., 1::2])
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if halves:
        return torch.cat([ra, rb], dim=-1)
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = ra, rb
    return out


def rope_adds_table(x):  # the chapter's absolute positions instead of a rotation
    length, dim = x.shape[-2:]
    return x + sinusoidal_table(length, dim)


def rope_halves(x):  # the GPT-NeoX layout: feature i paired with feature i + D/2
    return _rope(x, halves=True)


def rope_wrong_way(x):
    return _rope(x, sign=-1.0)


def rope_from_one(x):
    return _rope(x, start=1)


def rope_i_over_d(x):  # arange(D/2) / D instead of arange(0, D, 2) / D
    return _rope(x, exponent=1)


def rope_one_frequency(x):  # every pair turns one radian per position
    return _rope(x, one_freq=True)


def rope_cos_only(x):  # scales each feature by cos instead of rotating the pair
    length, dim = x.shape[-2:]
    angle = torch.arange(length)[:, None] * 10000 ** (-torch.arange(0, dim, 2) / dim)
    return x * torch.cos(angle).repeat_interleave(2, dim=-1)


def _rope_at(x, position):  # rotate every row of x as if it sat at `position`
    dim = x.shape[-1]
    angle = position * 10000 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # [D/2]
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return out


def rope_squared_position(x):  # an angle that is not linear in the position: p^2 theta_i
    out = torch.empty_like(x)
    for p in range(x.shape[-2]):
        out[..., p, :] = _rope_at(x[..., p, :], p * p)
    return out


def rope_table_sin_cos_swapped(x):  # cos and sin read from the wrong columns of the chapter's table
    length, dim = x.shape[-2:]
    pe = sinusoidal_table(length, dim)
    cos, sin = pe[:, 0::2], pe[:, 1::2]  # [L, D/2]: even columns hold sin, not cos
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
    return out


MUTANTS = {
    "07.attention_backward": {"no softmax coupling": Mutant(backward_no_coupling, "coupling"),
                              "no 1/sqrt(d)": Mutant(backward_unscaled, "sqrt(d)"),
                              "dk without 1/sqrt(d)": Mutant(backward_dk_unscaled, "dk"),
                              "dv from the raw scores": Mutant(backward_dv_from_raw_scores, "dv"),
                              "autograd": Mutant(backward_autograd, "calls")},
    "07.causal_mask": {"transposed": Mutant(causal_transposed, "transposed"),
                       "no diagonal": Mutant(causal_strict, "itself"), "float mask": Mutant(causal_float, "bool")},
    "07.rotary": {"adds the sinusoidal table": Mutant(rope_adds_table, "adds nothing"),
                  "cos only, no rotation": Mutant(rope_cos_only, "length of every pair"),
                  "position 1 first": Mutant(rope_from_one, "position 0"),
                  "cos and sin from the wrong columns": Mutant(rope_table_sin_cos_swapped, "position 0"),
                  "angle p^2 theta": Mutant(rope_squared_position, "m - n"),
                  "halves, not neighbours": Mutant(rope_halves, "neighbouring"),
                  "turns the wrong way": Mutant(rope_wrong_way, "wrong way"),
                  "i/D instead of 2i/D": Mutant(rope_i_over_d, "10000^(-2i/d)"),
                  "one frequency for all pairs": Mutant(rope_one_frequency, "should be x's pair turned by")},
}


# --- 07.order_experiment --------------------------------------------------------------------------------------


def order_mask_is_not_position():  # "only positions tell order"
    return {**ORDER_ANSWER, "no positions, causal mask": "chance"}


def order_all_learn():  # "attention is powerful enough"
    return {k: "learns" for k in ORDER_KEYS}


def order_accuracies():
    return {"no positions": 0.5, "sinusoidal positions": 1.0, "no positions, causal mask": 1.0}


def order_two_models():
    return {"no positions": "chance", "sinusoidal positions": "learns"}


# --- 07.fix_self_attention ----------------------------------------------------------------------------------


class ColleagueAttention(nn.Module):  # the bug itself: no batch_first, the course's mask as torch's
    def __init__(self, dim, heads, batch_first=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=batch_first)

    def forward(self, x, mask):
        return self.attn(x, x, x, key_padding_mask=mask)[0]


class BatchFirstOnly(ColleagueAttention):  # batch_first fixed, the mask still the wrong way round
    def __init__(self, dim, heads):
        super().__init__(dim, heads, batch_first=True)


class InvertedOnly(ColleagueAttention):  # the mask fixed and transposed to fit, still no batch_first
    def forward(self, x, mask):
        return self.attn(x, x, x, key_padding_mask=~mask.T)[0]


class NoMask(BatchFirstOnly):  # drops the mask to get rid of the NaN
    def forward(self, x, mask):
        return self.attn(x, x, x)[0]


class MaskAsAttnMask(BatchFirstOnly):  # a [B, L] mask given as attn_mask: every row gets one sample's mask
    def forward(self, x, mask):
        return self.attn(x, x, x, attn_mask=~mask[:1].expand(x.shape[1], -1))[0]


MUTANTS["07.order_experiment"] = {"a mask is not a position": Mutant(order_mask_is_not_position, "2 of 3"),
                                  "everything learns": Mutant(order_all_learn, "2 of 3"),
                                  "accuracies, not choices": Mutant(order_accuracies, "one of"),
                                  "a model left out": Mutant(order_two_models, "missing")}
MUTANTS["07.fix_self_attention"] = {"the colleague's layer (the bug)": Mutant(ColleagueAttention, "batch_first"),
                                    "batch_first only": Mutant(BatchFirstOnly, "~mask"),
                                    "~mask only": Mutant(InvertedOnly, "batch_first=true"),
                                    "no mask": Mutant(NoMask, "padding"),
                                    "one sample's mask for all": MaskAsAttnMask}
