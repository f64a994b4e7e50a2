"""Audio encoder: a 2-D CNN over spectrogram-like inputs (log-mel or MFCC), ``[B, 1, n_feat, F] -> [B, D]``.

Chapter 8 trains it on the world's sounds with log-mel and with MFCC features and compares the two, and on real
spoken digits compares global pooling with keeping frequency bands. The convolutions pool frequency harder than
time, so ``tokens`` keeps one token per (pooled) time frame.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmcourse.encoders.checks import check_encoder_input
from mmcourse.encoders.image import conv_bn_relu
from mmcourse.encoders.pooling import BandPool


class AudioCNN(nn.Module):
    """Three conv stages over (frequency, time), then a pooling head that keeps frequency bands and time stretches.

    ``forward``: ``[B, C, n_feat, F] -> [B, out_dim]``; ``tokens``: ``[B, ceil(F/2), out_dim]``, one token per
    pair of input frames. The head is :class:`mmcourse.encoders.pooling.BandPool`: frequency is averaged into
    ``bands`` bands that stay side by side (which band carried the energy is what tells one vowel — one
    speaker's "six" from "seven" — from another), and ``forward`` keeps ``segments`` stretches of time in order.
    ``bands=1, segments=1`` is global average pooling (then ``forward(x) == tokens(x).mean(1)``).

    Args:
        out_dim: feature width.
        width: channels of the first stage (then 2×, 4×).
        in_channels: input channels (1 for a single spectrogram).
        bands: frequency bands kept (of the ``ceil(n_feat / 4)`` rows of the last map).
        segments: time stretches kept by ``forward``.
    """

    def __init__(self, out_dim: int = 128, *, width: int = 32, in_channels: int = 1, bands: int = 4,
                 segments: int = 4):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2, ceil_mode=True),  # frequency /2, time /2
            conv_bn_relu(width, 2 * width), nn.MaxPool2d((2, 1), ceil_mode=True),  # frequency /2 only
            conv_bn_relu(2 * width, 4 * width))
        self.pool = BandPool(4 * width, out_dim, bands, segments)

    def feature_map(self, x: Tensor) -> Tensor:
        """``[B, 4*width, n_feat/4, F/2]``."""
        check_encoder_input(x, ("B", self.in_channels, "n_mels", "frames"), "audio encoder", module=self,
                            layers=self.features)
        if x.shape[2] < 4 or x.shape[3] < 2:
            raise ValueError(f"audio encoder needs at least 4 frequency bins and 2 frames, got {list(x.shape)}")
        return self.features(x)

    def tokens(self, x: Tensor) -> Tensor:
        return self.pool.tokens(self.feature_map(x))  # [B, T', out_dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.feature_map(x))  # [B, out_dim]
