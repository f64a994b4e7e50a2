"""Hidden tests of chapter 8's exercises (audio and video encoders): conv3d shapes, frame tokens, MFCCs.

The learner's notebook is ``solutions/08_audio_video_encoders.ipynb`` (``exercises/`` holds the blank copy).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmcourse.grading.registry import register


@register("08.conv3d_output_shape", points=2,
          hint="per axis: (size + 2*padding - kernel) // stride + 1; the channel axis becomes out_channels",
          timeout=30)
def _conv3d_output_shape(fn):
    cases = [((2, 3, 8, 32, 32), 16, 3, 1, 1), ((1, 4, 9, 17, 15), 8, (3, 5, 5), (1, 2, 2), (1, 2, 2)),
             ((3, 2, 4, 8, 8), 5, (1, 3, 3), (2, 1, 3), 0), ((1, 1, 5, 5, 5), 2, 5, 1, 0)]
    for shape, out_ch, k, s, p in cases:
        conv = nn.Conv3d(shape[1], out_ch, k, stride=s, padding=p, device="meta")
        want = tuple(conv(torch.empty(shape, device="meta")).shape)
        got = fn(shape, out_ch, k, s, p)
        assert got is not None, "return a tuple (B, C_out, T_out, H_out, W_out)"
        assert tuple(got) == want, (f"conv3d_output_shape({shape}, {out_ch}, kernel={k}, stride={s}, padding={p}) "
                                    f"returned {tuple(got)}, nn.Conv3d gives {want}")


@register("08.temporal_pool", points=2, hint="average over the last two axes, then move channels last: [B, T, C]",
          timeout=30)
def _temporal_pool(fn):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, 3, 6, generator=g)  # [B, C, T, H, W]
    got = fn(x)
    want = x.mean(dim=(3, 4)).transpose(1, 2)
    assert isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}"
    assert tuple(got.shape) == (2, 4, 5), f"tokens of [B=2, C=5, T=4, H=3, W=6] are [2, 4, 5], got {list(got.shape)}"
    torch.testing.assert_close(got, want, msg=lambda m: f"token t must be the spatial mean of frame t: {m}")


def _dct_reference(logmel: torch.Tensor, n_mfcc: int) -> torch.Tensor:
    n = logmel.shape[-2]
    m = torch.arange(n, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi * k * (m + 0.5) / n) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return torch.einsum("km,...mt->...kt", basis, logmel.double()).to(logmel.dtype)


@register("08.mfcc_from_logmel", points=2,
          hint="orthonormal DCT-II over the mel axis (-2): c_k = s_k Σ_m x_m cos(π k (m + ½) / M), s_0 = √(1/M), "
               "s_k = √(2/M)", timeout=30)
def _mfcc_from_logmel(fn):
    g = torch.Generator().manual_seed(0)
    for shape, n_mfcc in (((2, 1, 32, 7), 13), ((16, 5), 16), ((3, 20, 4), 1)):
        x = torch.randn(*shape, generator=g)
        got = fn(x, n_mfcc)
        want = _dct_reference(x, n_mfcc)
        assert isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}"
        assert got.shape == want.shape, (f"mfcc of a log-mel {list(shape)} with n_mfcc={n_mfcc} has shape "
                                         f"{list(want.shape)}, got {list(got.shape)}")
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4,
                                   msg=lambda m: f"MFCCs differ from the orthonormal DCT-II of the log-mel: {m}")
