"""Positional encodings: the fixed sinusoidal table of Vaswani et al. and a learned table (chapter 07).

Attention is blind to order; adding a position vector to each token embedding tells the model where a token
sits. Both modules map ``x [B, L, D]`` to ``x + pe[:L]`` and refuse sequences longer than their table.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """``[max_len, dim]``: ``pe[p, 2i] = sin(p / 10000^(2i/dim))``, ``pe[p, 2i+1] = cos(...)``."""
    if max_len < 1 or dim < 2 or dim % 2:
        raise ValueError(f"need max_len >= 1 and an even dim >= 2, got max_len={max_len}, dim={dim}")
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # [D/2]
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class _Positional(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.dim, self.max_len = dim, max_len

    def table(self) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, L, D]`` -> ``x + pe[:L]``."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects x of shape [B, L, {self.dim}], got {tuple(x.shape)}")
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} is longer than the positional table "
                             f"(max_len={self.max_len}); build the encoder with a larger max_len or truncate")
        return x + self.table()[: x.shape[1]].to(x.dtype)


class SinusoidalPositionalEncoding(_Positional):
    """Fixed sine/cosine positions (no parameters); the table is a non-persistent buffer."""

    def __init__(self, dim: int, max_len: int = 512):
        super().__init__(dim, max_len)
        self.register_buffer("pe", sinusoidal_table(max_len, dim), persistent=False)

    def table(self) -> Tensor:
        return self.pe


class LearnedPositionalEncoding(_Positional):
    """A trainable ``[max_len, D]`` table (as in BERT), initialised with small random values."""

    def __init__(self, dim: int, max_len: int = 512):
        super().__init__(dim, max_len)
        self.pe = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def table(self) -> Tensor:
        return self.pe
