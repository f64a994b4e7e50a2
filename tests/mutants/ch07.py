"""Wrong answers for chapter 07's checks (scaled dot-product attention, causal mask, sinusoidal positions)."""

import math

import torch

from . import Mutant


def attention_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_mask_inverted(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v


def attention_mask_ignored(q, k, v, mask=None):
    return attention_mask_inverted(q, k, v, None)


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
    "07.sdpa": {"unscaled": Mutant(attention_unscaled, "sqrt(d)"), "mask inverted": attention_mask_inverted,
                "softmax over queries": attention_softmax_over_queries, "mask ignored": attention_mask_ignored},
    "07.causal_mask": {"transposed": Mutant(causal_transposed, "transposed"),
                       "no diagonal": Mutant(causal_strict, "itself"), "float mask": Mutant(causal_float, "bool")},
    "07.sinusoidal_pe": {"sin and cos swapped": Mutant(pe_swapped, "swapped"),
                         "two halves": Mutant(pe_halves, "interleave"), "i/D instead of 2i/D": pe_wrong_exponent},
}
