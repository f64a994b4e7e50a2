"""Video encoders: a 3-D CNN and its (2+1)-D factorisation, ``[B, 3, T, H, W] -> [B, D]``, tokens over frames.

Chapter 8 compares their parameter counts and shows that a video encoder — unlike an image encoder that sees
one frame — recovers the motion of the world's objects. Time is never pooled, so ``tokens`` has one token
per input frame.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmcourse.encoders.checks import check_encoder_input


def conv2plus1d_mid_channels(in_ch: int, out_ch: int, t: int = 3, d: int = 3) -> int:
    """Middle width that gives a (2+1)-D conv about the parameters of a t×d×d 3-D conv (Tran et al., 2018)."""
    return max(1, (t * d * d * in_ch * out_ch) // (d * d * in_ch + t * out_ch))


def conv3d_block(in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1)) -> nn.Sequential:
    """3×3×3 conv (time, height, width; padding 1) → batch norm → ReLU."""
    return nn.Sequential(nn.Conv3d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(out_ch),
                         nn.ReLU(inplace=True))


def conv2plus1d_block(in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1),
                      mid_ch: int | None = None) -> nn.Sequential:
    """A (2+1)-D conv: 1×3×3 spatial conv → BN → ReLU → 3×1×1 temporal conv → BN → ReLU.

    ``mid_ch`` defaults to :func:`conv2plus1d_mid_channels`, matching the parameters of a 3×3×3 conv.
    """
    mid = conv2plus1d_mid_channels(in_ch, out_ch) if mid_ch is None else mid_ch
    st, sh, sw = stride
    return nn.Sequential(
        nn.Conv3d(in_ch, mid, (1, 3, 3), stride=(1, sh, sw), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, out_ch, (3, 1, 1), stride=(st, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))


class _VideoCNN(nn.Module):
    """Three stages (``width``, 2×, 4×): the first conv has spatial stride 2, then spatial max-pools by 2."""

    kind = "video"

    def __init__(self, block, out_dim: int, width: int, in_channels: int):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        pool = (1, 2, 2)  # pool space, never time
        self.features = nn.Sequential(
            block(in_channels, width, (1, 2, 2)), nn.MaxPool3d(pool, ceil_mode=True),
            block(width, 2 * width), nn.MaxPool3d(pool, ceil_mode=True),
            block(2 * width, 4 * width))
        self.proj = nn.Linear(4 * width, out_dim)

    def feature_map(self, x: Tensor) -> Tensor:
        """``[B, 4*width, T, H/8, W/8]``."""
        check_encoder_input(x, ("B", self.in_channels, "T", "H", "W"), f"video encoder ({type(self).__name__})",
                            module=self, layers=self.features)
        if x.shape[2] < 2:
            raise ValueError(f"video encoder needs at least 2 frames to see motion, got {list(x.shape)}")
        return self.features(x)

    def tokens(self, x: Tensor) -> Tensor:
        f = self.feature_map(x).mean(dim=(3, 4))  # [B, C, T]: average over space
        return self.proj(f.transpose(1, 2))  # [B, T, out_dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.feature_map(x).mean(dim=(2, 3, 4)))  # [B, out_dim]


class Video3DCNN(_VideoCNN):
    """A 3-D CNN (3×3×3 kernels over time, height and width): ``[B, 3, T, H, W] -> [B, out_dim]``."""

    def __init__(self, out_dim: int = 128, width: int = 16, in_channels: int = 3):
        super().__init__(conv3d_block, out_dim, width, in_channels)


class Video2Plus1D(_VideoCNN):
    """The (2+1)-D factorisation of :class:`Video3DCNN`: each 3-D conv is a spatial then a temporal conv."""

    def __init__(self, out_dim: int = 128, width: int = 16, in_channels: int = 3):
        super().__init__(conv2plus1d_block, out_dim, width, in_channels)
