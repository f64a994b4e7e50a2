"""Audio features from scratch in torch: STFT, mel filterbank, log-mel spectrogram and MFCC (no torchaudio).

Used by the synthetic world's sounds and AV-MNIST's spoken digits (chapter 00) and the audio encoders
(chapter 08). Checked in ``tests/test_data_audio.py`` against ``transformers.audio_utils`` and pure tones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hann_window(n: int, device: torch.device | str | None = None) -> Tensor:
    """Periodic Hann window of length ``n`` (the one STFTs use): ``0.5 - 0.5 cos(2πk/n)``."""
    k = torch.arange(n, device=device, dtype=torch.float32)
    return 0.5 - 0.5 * torch.cos(2 * math.pi * k / n)


def stft(x: Tensor, n_fft: int, hop: int, window: Tensor | None = None, center: bool = False) -> Tensor:
    """Short-time Fourier transform: complex ``[..., n_fft//2 + 1, frames]`` of a real signal ``[..., n]``.

    Frames are ``n_fft`` samples, ``hop`` apart, multiplied by ``window`` (periodic Hann by default);
    ``center=True`` reflect-pads ``n_fft//2`` samples on both sides first (frame t is centred at t·hop).
    """
    if n_fft < 2 or hop < 1:
        raise ValueError(f"need n_fft >= 2 and hop >= 1, got n_fft={n_fft}, hop={hop}")
    if center:
        lead = x.shape[:-1]
        x = torch.nn.functional.pad(x.reshape(-1, 1, x.shape[-1]), (n_fft // 2, n_fft // 2), mode="reflect")
        x = x.reshape(*lead, x.shape[-1])
    if x.shape[-1] < n_fft:
        raise ValueError(f"signal has {x.shape[-1]} samples, fewer than one frame (n_fft={n_fft})")
    w = hann_window(n_fft, x.device) if window is None else window.to(x.device)
    if w.shape != (n_fft,):
        raise ValueError(f"window must have shape ({n_fft},), got {tuple(w.shape)}")
    frames = x.unfold(-1, n_fft, hop) * w  # [..., frames, n_fft]
    return torch.fft.rfft(frames, dim=-1).transpose(-1, -2)  # [..., n_fft//2+1, frames]


def hz_to_mel(f: Tensor | float, scale: str = "htk") -> Tensor:
    """Hertz → mel. ``htk``: 2595·log10(1 + f/700); ``slaney``: linear below 1 kHz, logarithmic above."""
    f = torch.as_tensor(f, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    if scale == "slaney":
        logstep = 27.0 / math.log(6.4)
        return torch.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + torch.log(f.clamp_min(1e-9) / 1000.0) * logstep)
    raise ValueError(f"mel scale {scale!r} is not 'htk' or 'slaney'")


def mel_to_hz(m: Tensor | float, scale: str = "htk") -> Tensor:
    """Mel → hertz, the inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(m, dtype=torch.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale == "slaney":
        logstep = math.log(6.4) / 27.0
        return torch.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * torch.exp(logstep * (m - 15.0)))
    raise ValueError(f"mel scale {scale!r} is not 'htk' or 'slaney'")


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: float, f_min: float = 0.0,
                   f_max: float | None = None, scale: str = "htk", norm: str | None = None) -> Tensor:
    """Triangular mel filters ``[n_freqs, n_mels]`` (rows: STFT bins 0..sr/2; columns: mel bands).

    Band ``m`` rises linearly from mel point ``m`` to ``m+1`` and falls to ``m+2``, with ``n_mels + 2``
    points equally spaced in mel between ``f_min`` and ``f_max``. ``norm="slaney"`` scales each band to
    equal area (2 / bandwidth in Hz).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    if n_freqs < 2 or n_mels < 1:
        raise ValueError(f"need n_freqs >= 2 and n_mels >= 1, got {n_freqs}, {n_mels}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm {norm!r} is not None or 'slaney'")
    mels = torch.linspace(hz_to_mel(f_min, scale).item(), hz_to_mel(f_max, scale).item(), n_mels + 2,
                          dtype=torch.float64)
    edges = mel_to_hz(mels, scale)  # [n_mels + 2] in Hz
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)  # [n_freqs]
    width = edges[1:] - edges[:-1]  # [n_mels + 1]
    rel = edges[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    rising = -rel[:, :-2] / width[:-1]
    falling = rel[:, 2:] / width[1:]
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (edges[2:] - edges[:-2]))[None, :]
    return fb.float()


def log_mel(wave: Tensor, sample_rate: float, n_fft: int = 256, hop: int = 128, n_mels: int = 32,
            f_min: float = 0.0, f_max: float | None = None, center: bool = False, eps: float = 1e-6,
            filters: Tensor | None = None) -> Tensor:
    """Log-mel power spectrogram ``[..., n_mels, frames]``, i.e. ``log(filters^T |STFT|^2 + eps)``."""
    power = stft(wave, n_fft, hop, center=center).abs() ** 2  # [..., n_freqs, frames]
    if filters is None:
        filters = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max)
    mel = torch.einsum("...ft,fm->...mt", power, filters.to(power.device))
    return torch.log(mel + eps)


def dct_matrix(n_in: int, n_out: int, device: torch.device | str | None = None) -> Tensor:
    """Orthonormal DCT-II ``[n_out, n_in]``: row k is ``s_k cos(π k (m + ½) / n_in)``."""
    if not 1 <= n_out <= n_in:
        raise ValueError(f"need 1 <= n_out <= n_in, got n_out={n_out}, n_in={n_in}")
    m = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    d = torch.cos(math.pi * k * (m + 0.5) / n_in) * math.sqrt(2.0 / n_in)
    d[0] /= math.sqrt(2.0)
    return d.float().to(device)


def mfcc(log_mel_spec: Tensor, n_mfcc: int = 13) -> Tensor:
    """MFCCs ``[..., n_mfcc, frames]``: the orthonormal DCT-II of a log-mel ``[..., n_mels, frames]``."""
    d = dct_matrix(log_mel_spec.shape[-2], n_mfcc, log_mel_spec.device)
    return torch.einsum("km,...mt->...kt", d, log_mel_spec)
