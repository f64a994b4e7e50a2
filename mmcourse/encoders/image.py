"""Image encoders: a small CNN (``SmallCNN``) whose last feature map doubles as patch tokens; input checks.

Chapter 5 trains it on the world's image modality and on real handwritten digits (global pooling against a
pooling grid, ``grid=``) and compares it with ResNets from ``encoders/resnet.py``;
chapter 8 shows it cannot see motion in a single video frame. ``check_shape`` is shared by the audio and
video encoders, so every encoder rejects a wrong rank or channel count with the same kind of message.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcourse.encoders.checks import check_encoder_input
from mmcourse.encoders.pooling import GridPool
from mmcourse.layers.params import count_parameters


def check_shape(x: Tensor, pattern: Sequence[int | str], who: str) -> None:
    """Raise ``ValueError`` unless ``x`` has ``len(pattern)`` dims and every int entry of ``pattern`` matches.

    Example: ``check_shape(x, ("B", 3, "H", "W"), "image encoder")`` raises
    ``image encoder expects [B, 3, H, W], got [8, 6, 32, 32]`` for a 6-channel input.
    """
    ok = x.dim() == len(pattern) and all(isinstance(p, str) or x.shape[i] == p for i, p in enumerate(pattern))
    if not ok:
        want = ", ".join(str(p) for p in pattern)
        raise ValueError(f"{who} expects [{want}], got {list(x.shape)}")


def check_image(x: Tensor, channels: int = 3, who: str = "image encoder") -> None:
    """An image batch must be ``[B, channels, H, W]``."""
    check_shape(x, ("B", channels, "H", "W"), who)


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """3×3 conv (padding 1, no bias) → batch norm → ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three conv stages (``width``, ``2*width``, ``4*width`` channels; the first two max-pool by 2), then pooling.

    ``tokens`` maps ``[B, C, H, W]`` to ``[B, (H/4)*(W/4), out_dim]``, one token per position ("patch") of the
    last feature map. ``forward`` maps it to ``[B, out_dim]``, pooling the map as ``grid`` says (see
    :class:`mmcourse.encoders.pooling.GridPool`):

    - ``grid=4`` (default): the map is averaged over a 4×4 grid of cells that are kept side by side, so the
      features still say *where* strokes are (a 16×16 digit keeps every position of its 4×4 map; a 32×32
      image is pooled in 2×2 blocks). ``grid=2`` keeps quadrants.
    - ``grid=1``: global average pooling — position-free features, ``forward(x) == tokens(x).mean(1)``.

    Args:
        out_dim: feature width.
        width: channels of the first stage.
        in_channels: image channels (3 for RGB).
        grid: cells per side of the pooling grid (an int or ``(rows, cols)``); 1 = global average pooling.
    """

    def __init__(self, out_dim: int = 128, *, width: int = 32, in_channels: int = 3,
                 grid: int | tuple[int, int] = 4):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2),
            conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 4 * width))
        self.pool = GridPool(4 * width, out_dim, grid)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last feature map ``[B, 4*width, H/4, W/4]``."""
        check_encoder_input(x, ("B", self.in_channels, "H", "W"), "image encoder", module=self,
                            layers=self.features)
        return self.features(x)

    def tokens(self, x: Tensor) -> Tensor:
        return self.pool.tokens(self.feature_map(x))  # [B, L, out_dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.feature_map(x))  # [B, out_dim]


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model`` (see :func:`mmcourse.models.count_parameters`)."""
    return count_parameters(model, trainable_only)


def patchify(x: Tensor, patch: int) -> Tensor:
    """Cut images ``[B, C, H, W]`` into non-overlapping ``patch``×``patch`` patches ``[B, L, C*patch*patch]``.

    The raw-pixel view of "image patches as tokens" (chapter 7's vision Transformers use it); ``H`` and ``W``
    must be multiples of ``patch``.
    """
    check_shape(x, ("B", "C", "H", "W"), "patchify")
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"patchify needs H and W divisible by patch={patch}, got [B, C, {h}, {w}]")
    p = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return p.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def frame_batch(video: Tensor, index: int | None = None) -> Tensor:
    """One frame of each clip ``[B, C, T, H, W] -> [B, C, H, W]`` (the middle one by default)."""
    check_shape(video, ("B", "C", "T", "H", "W"), "frame_batch")
    t = video.shape[2] // 2 if index is None else index
    return video[:, :, t].contiguous(memory_format=torch.contiguous_format)
