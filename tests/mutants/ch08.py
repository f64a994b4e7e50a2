"""Wrong answers for chapter 08's checks (Conv3d output shape, frame tokens, MFCCs from a log-mel, the fixed
log-mel, the mel resolution experiment)."""

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


# --- 08.fix_log_mel ---------------------------------------------------------------------------------------------

def _mel_power(wave, sample_rate, n_fft, hop, n_mels, exponent=2):
    from mmcourse.data.audio import mel_filterbank, stft

    power = stft(wave, n_fft, hop).abs() ** exponent  # [..., freqs, frames]
    return torch.einsum("...ft,fm->...mt", power, mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate))


def log_mel_eps_only(wave, sample_rate, n_fft=256, hop=128, n_mels=32, eps=1e-6):  # axes still swapped
    return torch.log(_mel_power(wave, sample_rate, n_fft, hop, n_mels).transpose(-1, -2) + eps)


def log_mel_axes_only(wave, sample_rate, n_fft=256, hop=128, n_mels=32, eps=1e-6):  # log(0) = -inf left
    return torch.log(_mel_power(wave, sample_rate, n_fft, hop, n_mels))


def log_mel_dot_t(wave, sample_rate, n_fft=256, hop=128, n_mels=32, eps=1e-6):  # .T: right for one clip only
    from mmcourse.data.audio import mel_filterbank, stft

    power = stft(wave, n_fft, hop).abs() ** 2  # [..., freqs, frames]
    return torch.log(power.T @ mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate) + eps).T


def log_mel_magnitude(wave, sample_rate, n_fft=256, hop=128, n_mels=32, eps=1e-6):
    return torch.log(_mel_power(wave, sample_rate, n_fft, hop, n_mels, exponent=1) + eps)


def log_mel_log10(wave, sample_rate, n_fft=256, hop=128, n_mels=32, eps=1e-6):
    return torch.log10(_mel_power(wave, sample_rate, n_fft, hop, n_mels) + eps)


# --- 08.mel_resolution ------------------------------------------------------------------------------------------

def resolution_same_everywhere():  # "mel is just a coarser STFT": one gap for every tone
    return {"linear": {250: 50, 1000: 50, 2000: 50}, "mel": {250: 100, 1000: 100, 2000: 100}}


def resolution_kinds_swapped():
    return {"mel": {250: 50, 1000: 50, 2000: 50}, "linear": {250: 100, 1000: 150, 2000: 300}}


def resolution_bin_width():  # the STFT's bin width (31.25 Hz), not a gap of the sweep
    return {"linear": {250: 31.25, 1000: 31.25, 2000: 31.25}, "mel": {250: 100, 1000: 150, 2000: 300}}


def resolution_float_gaps():  # the right numbers as floats
    return {"linear": {250: 50.0, 1000: 50.0, 2000: 50.0}, "mel": {250: 100.0, 1000: 150.0, 2000: 300.0}}


def resolution_mel_only():
    return {"mel": {250: 100, 1000: 150, 2000: 300}}


MUTANTS["08.fix_log_mel"] = {
    "eps added, axes still swapped": Mutant(log_mel_eps_only, "frames first"),
    "axes fixed, no eps": Mutant(log_mel_axes_only, "eps"),
    ".T instead of the last two axes": Mutant(log_mel_dot_t, "not .t"),
    "magnitude instead of power": Mutant(log_mel_magnitude, "power spectrogram"),
    "log10 instead of the natural log": Mutant(log_mel_log10, "natural log"),
}
MUTANTS["08.mel_resolution"] = {
    "one gap at every frequency": Mutant(resolution_same_everywhere, "2 of 6"),
    "linear and mel swapped": Mutant(resolution_kinds_swapped, "6 of 6"),
    "the bin width": Mutant(resolution_bin_width, "one of res_gaps"),
    "floats": Mutant(resolution_float_gaps, "an int"),
    "only the mel spectrogram": Mutant(resolution_mel_only, "'linear' and 'mel'"),
}
