"""Wrong answers for chapter 08's checks (Conv3d output shape, frame tokens, MFCCs from a log-mel)."""

import math

import torch

from . import Mutant


def _triple(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


def shape_ignores_padding(shape, out_channels, kernel_size, stride=1, padding=0):
    k, s = _triple(kernel_size), _triple(stride)
    return (shape[0], out_channels, *((n - k[i]) // s[i] + 1 for i, n in enumerate(shape[2:])))


def shape_first_kernel_everywhere(shape, out_channels, kernel_size, stride=1, padding=0):
    k, s, p = _triple(kernel_size), _triple(stride), _triple(padding)
    return (shape[0], out_channels, *((n + 2 * p[i] - k[0]) // s[i] + 1 for i, n in enumerate(shape[2:])))


def shape_keeps_in_channels(shape, out_channels, kernel_size, stride=1, padding=0):
    k, s, p = _triple(kernel_size), _triple(stride), _triple(padding)
    return (shape[0], shape[1], *((n + 2 * p[i] - k[i]) // s[i] + 1 for i, n in enumerate(shape[2:])))


def pool_channels_first(features):
    return features.mean(dim=(3, 4))


def pool_wrong_axes(features):
    return features.mean(dim=(2, 3)).transpose(1, 2)


def pool_max(features):
    return features.amax(dim=(3, 4)).transpose(1, 2)


def _dct(logmel, n_mfcc, scale=True, first=True, axis=-2):
    x = logmel.transpose(-1, -2) if axis == -1 else logmel
    n = x.shape[-2]
    m = torch.arange(n, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi * k * (m + 0.5) / n) * (math.sqrt(2.0 / n) if scale else 1.0)
    if first and scale:
        basis[0] /= math.sqrt(2.0)
    out = torch.einsum("km,...mt->...kt", basis.to(x.dtype), x)
    return out.transpose(-1, -2) if axis == -1 else out


def mfcc_unscaled(logmel, n_mfcc=13):
    return _dct(logmel, n_mfcc, scale=False)


def mfcc_s0_not_halved(logmel, n_mfcc=13):
    return _dct(logmel, n_mfcc, first=False)


def mfcc_over_frames(logmel, n_mfcc=13):
    return _dct(logmel.transpose(-1, -2), min(n_mfcc, logmel.shape[-1])).transpose(-1, -2)


MUTANTS = {
    "08.conv3d_output_shape": {"ignores padding": shape_ignores_padding,
                               "one kernel size for all axes": shape_first_kernel_everywhere,
                               "keeps the input channels": shape_keeps_in_channels},
    "08.temporal_pool": {"channels first": Mutant(pool_channels_first, "[2, 4, 5]"),
                         "pools time instead of width": pool_wrong_axes, "max instead of mean": pool_max},
    "08.mfcc_from_logmel": {"not orthonormal": mfcc_unscaled, "s_0 not divided by sqrt 2": mfcc_s0_not_halved,
                            "DCT over frames": mfcc_over_frames},
}
