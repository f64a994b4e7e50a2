"""How a CNN encoder turns its last feature map into tokens and one feature vector (chapters 5 and 8).

Global average pooling (the classic ending of a CNN) keeps *what* was detected and forgets *where*: fine when
the label does not depend on position (the synthetic world's shapes sit anywhere), harmful when it does — a
handwritten "7" and "1" differ in where the strokes are, and a spoken "six" and "seven" differ in which mel
bands carry energy when. These pooling heads keep a little structure instead:

- :class:`GridPool` (images): average the map over a ``grid`` of cells (``grid=2``: four quadrants) and keep
  the cells side by side; the feature vector is a linear map of all cells together. ``grid=1`` is global
  average pooling. Tokens are every position of the map either way.
- :class:`BandPool` (spectrograms): average frequency into ``bands`` bands and *keep* them side by side, so each
  time frame is a token that still knows its spectrum's shape; the feature vector averages the frames within
  ``segments`` stretches of time and maps them together. ``bands=1, segments=1`` is global average pooling.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    p = (v, v) if isinstance(v, int) else tuple(v)
    if len(p) != 2 or any(not isinstance(i, int) or i < 1 for i in p):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {v!r}")
    return p  # type: ignore[return-value]


class GridPool(nn.Module):
    """Feature map ``[B, C, H, W]`` → tokens ``[B, H*W, out_dim]`` and a feature vector ``[B, out_dim]``.

    ``tokens`` projects every position of the map to ``out_dim`` (one linear map). ``forward`` averages the
    tokens over a ``grid = (gh, gw)`` of cells and maps the concatenated cells to ``out_dim``, so the vector
    still says in which cell a feature was found. With ``grid = 1`` it is global average pooling:
    ``forward(f) == tokens(f).mean(1)``. A grid as fine as the map (4 for a 16×16 image after two 2× pools)
    keeps every position: the classic "flatten, then a linear layer".

    Args:
        channels: ``C``. out_dim: output width. grid: cells per side (an int or ``(rows, cols)``).
    """

    def __init__(self, channels: int, out_dim: int, grid: int | tuple[int, int] = 4):
        super().__init__()
        self.grid = _pair(grid, "grid")
        self.cells = self.grid[0] * self.grid[1]
        self.proj = nn.Linear(channels, out_dim)
        self.merge = nn.Linear(self.cells * out_dim, out_dim) if self.cells > 1 else nn.Identity()

    def tokens(self, f: Tensor) -> Tensor:
        return self.proj(f.flatten(2).transpose(1, 2))  # [B, H*W, out_dim]

    def forward(self, f: Tensor) -> Tensor:
        if self.cells == 1:
            return self.proj(f.mean(dim=(2, 3)))  # [B, out_dim]
        cells = F.adaptive_avg_pool2d(f, self.grid).flatten(2).transpose(1, 2)  # [B, cells, C]
        return self.merge(self.proj(cells).flatten(1))  # [B, cells * out_dim] -> [B, out_dim]


class BandPool(nn.Module):
    """Spectrogram feature map ``[B, C, F, T]`` → frame tokens ``[B, T, out_dim]`` and a vector ``[B, out_dim]``.

    Frequency is average-pooled into ``bands`` bands, which are kept side by side: the token of frame ``t`` is a
    linear map of its ``C * bands`` values. ``forward`` averages the tokens within ``segments`` equal stretches
    of time and maps the concatenated stretches to ``out_dim`` (with ``segments = 1`` it is ``tokens.mean(1)``).

    Args:
        channels: ``C``. out_dim: output width. bands: frequency bands kept. segments: time stretches kept.
    """

    def __init__(self, channels: int, out_dim: int, bands: int = 4, segments: int = 4):
        super().__init__()
        if bands < 1 or segments < 1:
            raise ValueError(f"bands and segments must be >= 1, got bands={bands}, segments={segments}")
        self.bands, self.segments = bands, segments
        self.proj = nn.Linear(channels * bands, out_dim)
        self.merge = nn.Linear(segments * out_dim, out_dim) if segments > 1 else nn.Identity()

    def tokens(self, f: Tensor) -> Tensor:
        f = F.adaptive_avg_pool2d(f, (self.bands, f.shape[3]))  # [B, C, bands, T]
        return self.proj(f.flatten(1, 2).transpose(1, 2))  # [B, T, out_dim]

    def forward(self, f: Tensor) -> Tensor:
        t = self.tokens(f)  # [B, T, out_dim]
        if self.segments == 1:
            return t.mean(1)
        s = F.adaptive_avg_pool1d(t.transpose(1, 2), self.segments)  # [B, out_dim, segments]
        return self.merge(s.transpose(1, 2).flatten(1))  # [B, out_dim]
