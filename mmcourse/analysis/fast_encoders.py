"""Small, fast encoders for experiments that train many models (chapter 9's fusion comparisons).

Chapter 9 trains dozens of models — every fusion method, several seeds, several worlds — so on a CPU each
must train in seconds. These encoders keep the contract (``forward -> [B, out_dim]``, ``tokens -> [B, L,
out_dim]``, ``out_dim``) at a fraction of the cost of chapters 3–8's encoders, which the ``full`` profile may
use instead (any ``make_encoders`` factory works with ``compare_fusions``).

- ``TinyCNN``: 2× average-pool, then two conv–ReLU–max-pool stages; tokens are the cells of the last map.
- ``PooledMLPEncoder``: average-pool a spectrogram-like ``[B, C, H, W]`` input, flatten, two-layer MLP;
  tokens are its columns (time frames for a log-mel input).
- ``BagOfWordsEncoder``: mean of word embeddings (padding id 0 ignored), then an MLP; tokens are the
  embedded words plus learned positions.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TinyCNN(nn.Module):
    """``[B, C, 32, 32] -> [B, out_dim]`` with two small conv stages on a 2×-downsampled input."""

    def __init__(self, in_channels: int = 3, out_dim: int = 32, width: int = 16, size: int = 32):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.features = nn.Sequential(
            nn.AvgPool2d(2), nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        cells = (size // 8) ** 2
        self.head = nn.Linear(2 * width * cells, out_dim)
        self.token_proj = nn.Linear(2 * width, out_dim)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"TinyCNN expects [B, {self.in_channels}, H, W], got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.head(self.features(x).flatten(1))  # [B, out_dim]

    def tokens(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.token_proj(self.features(x).flatten(2).transpose(1, 2))  # [B, cells, out_dim]


class PooledMLPEncoder(nn.Module):
    """``[B, C, H, W] -> avg-pool(pool) -> MLP -> [B, out_dim]``; tokens: one per pooled column ``[B, W/pool, D]``."""

    def __init__(self, in_shape: tuple[int, int, int] = (1, 32, 32), out_dim: int = 32, hidden: int = 128,
                 pool: int = 2):
        super().__init__()
        c, h, w = in_shape
        self.in_shape, self.pool, self.out_dim = tuple(in_shape), pool, out_dim
        flat = c * (h // pool) * (w // pool)
        self.mlp = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.token_proj = nn.Sequential(nn.Linear(c * (h // pool), hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def _pooled(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"PooledMLPEncoder expects [B, {', '.join(map(str, self.in_shape))}], "
                             f"got {tuple(x.shape)}")
        return F.avg_pool2d(x, self.pool)  # [B, C, H', W']

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self._pooled(x).flatten(1))

    def tokens(self, x: Tensor) -> Tensor:
        p = self._pooled(x)
        return self.token_proj(p.flatten(1, 2).transpose(1, 2))  # [B, W', out_dim]


class BagOfWordsEncoder(nn.Module):
    """``[B, L]`` int64 ids (pad 0) ``-> [B, out_dim]``: masked mean of embeddings, then an MLP."""

    def __init__(self, vocab_size: int, out_dim: int = 32, max_len: int = 64):
        super().__init__()
        self.vocab_size, self.out_dim, self.max_len = vocab_size, out_dim, max_len
        self.embed = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(max_len, out_dim))
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(out_dim, out_dim))

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32) or x.shape[1] > self.max_len:
            raise ValueError(f"BagOfWordsEncoder expects int ids [B, L <= {self.max_len}], got "
                             f"{tuple(x.shape)} {x.dtype}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        m = (x != 0).unsqueeze(-1).to(self.embed.weight.dtype)  # [B, L, 1]
        return self.mlp((self.embed(x) * m).sum(1) / m.sum(1).clamp_min(1.0))

    def tokens(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.embed(x) + self.pos[: x.shape[1]]  # [B, L, out_dim]


def fast_encoders(modalities: Iterable[str], *, dim: int = 32, vocab_size: int = 128, width: int = 16,
                  audio_shape: tuple[int, int, int] = (1, 32, 32), image_size: int = 32) -> dict[str, nn.Module]:
    """Fresh fast encoders ``{modality: encoder}`` (each ``out_dim = dim``) for image/text/audio/video.

    ``audio_shape`` and ``image_size`` are the input sizes (the world's by default; AV-digits has
    ``audio_shape=(1, 32, 48)``, ``image_size=16``). Video gets a ``TinyCNN`` over the time-averaged frames (no
    motion: use chapter 8's video encoders for that).
    """
    out: dict[str, nn.Module] = {}
    for m in sorted(modalities):
        if m == "image":
            out[m] = TinyCNN(3, dim, width, size=image_size)
        elif m == "text":
            out[m] = BagOfWordsEncoder(vocab_size, dim)
        elif m == "audio":
            out[m] = PooledMLPEncoder(audio_shape, dim)
        elif m == "video":
            out[m] = FrameMeanEncoder(TinyCNN(3, dim, width, size=image_size))
        else:
            raise ValueError(f"fast_encoders has no encoder for modality {m!r}; known: audio, image, text, video")
    return out


class FrameMeanEncoder(nn.Module):
    """``[B, C, T, H, W] -> encoder(frames averaged over time)``; tokens of the averaged frame."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder, self.out_dim = encoder, encoder.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x.mean(2))

    def tokens(self, x: Tensor) -> Tensor:
        return self.encoder.tokens(x.mean(2))
