"""Sounds of the synthetic world: a harmonic tone per scene, then its log-mel spectrogram (chapter 00).

Timbre (the mix of 6 harmonics) comes from a shape class, pitch from the colour, duration and loudness from
the size; white noise is added at a chosen signal-to-noise ratio. All samples are made in one batched pass.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmcourse.data.audio import log_mel, mel_filterbank

SAMPLE_RATE = 8000
N_FFT, HOP, N_MELS, N_FRAMES = 256, 128, 32, 32
N_SAMPLES = N_FFT + (N_FRAMES - 1) * HOP  # 4224 samples ≈ 0.53 s → exactly N_FRAMES frames
# relative amplitude of harmonics 1..6 per timbre class (one per shape class)
TIMBRES = ((1, 0, 0, 0, 0, 0), (1, 0, .6, 0, .4, 0), (1, .8, 0, 0, 0, 0), (1, 0, 0, .8, 0, 0),
           (1, .5, .5, .5, .5, .5), (.3, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, .8), (1, 0, 0, 0, .8, 0),
           (.3, 0, 1, 0, 0, 0), (1, .6, .4, .2, 0, 0))
PITCH_HZ = (200.0, 250.0, 300.0, 360.0, 430.0, 520.0)  # fundamental per colour class
DURATION_S = (0.15, 0.3, 0.45)  # per size class
LOUDNESS = (0.4, 0.7, 1.0)  # per size class


TABLE = 1024  # samples in one period of a wavetable


def wavetables(device: torch.device | str | None = None) -> Tensor:
    """One period of each timbre, ``[10, TABLE]``: a sum of harmonics 1..6 with unit total power."""
    amps = torch.tensor(TIMBRES, dtype=torch.float64)
    amps = amps / amps.norm(dim=1, keepdim=True)  # [10, 6]
    j = torch.arange(TABLE, dtype=torch.float64) / TABLE
    k = torch.arange(1, 7, dtype=torch.float64)[:, None]
    phase = 0.7 * k  # fixed, so a timbre is a fixed waveform shape
    table = amps @ torch.sin(2 * math.pi * k * j + phase) * math.sqrt(2.0)  # [10, TABLE]
    return table.float().to(device)


def synth_waves(timbre: Tensor, color: Tensor, size: Tensor, snr_db: float, gen: torch.Generator) -> Tensor:
    """Waveforms ``[B, N_SAMPLES]``: wavetable tones with a random onset and phase, plus noise at ``snr_db``.

    Each sample reads the wavetable of its timbre at its pitch (``phase = f0 · t``), so making a tone costs
    one gather per audio sample instead of six sines.
    """
    dev = timbre.device
    n = timbre.shape[0]
    t = torch.arange(N_SAMPLES, device=dev, dtype=torch.float32) / SAMPLE_RATE  # [S]
    jitter = 1.0 + 0.03 * (2 * torch.rand(n, generator=gen, device=dev) - 1)
    f0 = torch.tensor(PITCH_HZ, device=dev)[color] * jitter  # [B]
    start = torch.rand(n, 1, generator=gen, device=dev)
    pos = ((f0[:, None] * t + start) * TABLE).long() % TABLE  # [B, S] index into one period
    flat = wavetables(dev).view(-1)
    tone = flat[pos + (timbre * TABLE)[:, None]]  # [B, S]
    onset = 0.05 * torch.rand(n, 1, generator=gen, device=dev)
    dur = torch.tensor(DURATION_S, device=dev)[size][:, None]
    ramp = 0.01
    env = ((t - onset) / ramp).clamp(0, 1) * ((onset + dur - t) / ramp).clamp(0, 1)  # [B, S]
    wave = torch.tensor(LOUDNESS, device=dev)[size][:, None] * env * tone
    power = wave.pow(2).mean(1, keepdim=True)
    noise_std = torch.sqrt(power / 10 ** (snr_db / 10))
    return wave + noise_std * torch.randn(n, N_SAMPLES, generator=gen, device=dev)


def waves_to_logmel(waves: Tensor) -> Tensor:
    """Log-mel spectrograms ``[B, 1, N_MELS, N_FRAMES]`` of waveforms ``[B, N_SAMPLES]``."""
    fb = mel_filterbank(N_FFT // 2 + 1, N_MELS, SAMPLE_RATE, f_min=50.0).to(waves.device)
    return log_mel(waves, SAMPLE_RATE, N_FFT, HOP, N_MELS, filters=fb).unsqueeze(1)
