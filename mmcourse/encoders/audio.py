"""Audio encoder: a 2-D CNN over spectrogram-like inputs (log-mel or MFCC), ``[B, 1, n_feat, F] -> [B, D]``.

Chapter 7 trains it on the world's sounds with log-mel and with MFCC features and compares the two. The
convolutions pool frequency harder than time, so ``tokens`` keeps one token per (pooled) time frame.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmcourse.encoders.image import check_shape, conv_bn_relu


class AudioCNN(nn.Module):
    """Three conv stages over (frequency, time); then frequency is averaged away.

    ``forward``: ``[B, C, n_feat, F] -> [B, out_dim]``; ``tokens``: ``[B, ceil(F/2), out_dim]``, one token per
    pair of input frames. ``forward(x) == tokens(x).mean(1)`` (same linear map after the average).

    Args:
        out_dim: feature width.
        width: channels of the first stage (then 2×, 4×).
        in_channels: input channels (1 for a single spectrogram).
    """

    def __init__(self, out_dim: int = 128, width: int = 32, in_channels: int = 1):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width), nn.MaxPool2d(2, ceil_mode=True),  # frequency /2, time /2
            conv_bn_relu(width, 2 * width), nn.MaxPool2d((2, 1), ceil_mode=True),  # frequency /2 only
            conv_bn_relu(2 * width, 4 * width))
        self.proj = nn.Linear(4 * width, out_dim)

    def feature_map(self, x: Tensor) -> Tensor:
        """``[B, 4*width, n_feat/4, F/2]``."""
        check_shape(x, ("B", self.in_channels, "n_mels", "frames"), "audio encoder")
        if x.shape[2] < 4 or x.shape[3] < 2:
            raise ValueError(f"audio encoder needs at least 4 frequency bins and 2 frames, got {list(x.shape)}")
        return self.features(x)

    def tokens(self, x: Tensor) -> Tensor:
        f = self.feature_map(x).mean(dim=2)  # [B, C, T']: average over frequency
        return self.proj(f.transpose(1, 2))  # [B, T', out_dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.feature_map(x).mean(dim=(2, 3)))  # [B, out_dim]
