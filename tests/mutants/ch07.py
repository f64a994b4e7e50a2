"""Wrong answers for chapter 07's checks (attention's backward pass, causal mask, sinusoidal positions)."""

import math

import torch
from torch import nn

from mmcourse.grading.ch07 import ORDER_ANSWER, ORDER_KEYS

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


def _pe(max_len, dim, swap=False, halves=False, exponent=2):
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim) * (exponent / 2))
    a, b = (torch.cos(pos * freq), torch.sin(pos * freq)) if swap else (torch.sin(pos * freq), torch.cos(pos * freq))
    if halves:
        return torch.cat([a, b], dim=1)
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2], pe[:, 1::2] = a, b
    return pe


def pe_swapped(max_len, dim):
    return _pe(max_len, dim, swap=True)


def pe_halves(max_len, dim):
    return _pe(max_len, dim, halves=True)


def pe_wrong_exponent(max_len, dim):
    return _pe(max_len, dim, exponent=1)


MUTANTS = {
    "07.attention_backward": {"no softmax coupling": Mutant(backward_no_coupling, "coupling"),
                              "no 1/sqrt(d)": Mutant(backward_unscaled, "sqrt(d)"),
                              "dk without 1/sqrt(d)": Mutant(backward_dk_unscaled, "dk"),
                              "dv from the raw scores": Mutant(backward_dv_from_raw_scores, "dv"),
                              "autograd": Mutant(backward_autograd, "calls")},
    "07.causal_mask": {"transposed": Mutant(causal_transposed, "transposed"),
                       "no diagonal": Mutant(causal_strict, "itself"), "float mask": Mutant(causal_float, "bool")},
    "07.sinusoidal_pe": {"sin and cos swapped": Mutant(pe_swapped, "swapped"),
                         "two halves": Mutant(pe_halves, "interleave"), "i/D instead of 2i/D": pe_wrong_exponent},
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
