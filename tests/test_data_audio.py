"""Tests for the from-scratch audio features (mmcourse/data/audio.py) against transformers.audio_utils."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import audio_utils as ref

from mmcourse.data.audio import dct_matrix, hann_window, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, mfcc, stft


def test_hann_matches_reference():
    np.testing.assert_allclose(hann_window(256).numpy(), ref.window_function(256, "hann", periodic=True),
                               atol=1e-6)


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_scale_matches_reference_and_inverts(scale):
    f = torch.tensor([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0], dtype=torch.float64)
    np.testing.assert_allclose(hz_to_mel(f, scale).numpy(), ref.hertz_to_mel(f.numpy(), mel_scale=scale),
                               rtol=1e-6)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f, scale), scale), f)


@pytest.mark.parametrize("scale,norm", [("htk", None), ("slaney", "slaney"), ("htk", "slaney")])
def test_mel_filterbank_matches_reference(scale, norm):
    ours = mel_filterbank(129, 40, 16000, f_min=20.0, f_max=7600.0, scale=scale, norm=norm)
    theirs = ref.mel_filter_bank(129, 40, 20.0, 7600.0, 16000, norm=norm, mel_scale=scale)
    assert ours.shape == (129, 40)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("center", [False, True])
def test_stft_power_matches_reference(center):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, generator=g, dtype=torch.float64)
    ours = stft(x.float(), 256, 100, center=center).abs() ** 2
    theirs = ref.spectrogram(x.numpy(), ref.window_function(256, "hann"), 256, 100, power=2.0, center=center)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(stft(x.float(), 256, 100, center=center),
                               torch.stft(x.float(), 256, 100, window=torch.hann_window(256), center=center,
                                          return_complex=True, pad_mode="reflect"), atol=1e-3, rtol=1e-4)


def test_log_mel_matches_reference_spectrogram():
    sr = 8000
    g = torch.Generator().manual_seed(2)
    x = torch.sin(2 * math.pi * 440 * torch.arange(4000, dtype=torch.float64) / sr)
    x = x + 0.1 * torch.randn(4000, generator=g, dtype=torch.float64)
    fb = mel_filterbank(129, 32, sr)
    ours = log_mel(x.float(), sr, 256, 128, 32, filters=fb, eps=1e-10)
    theirs = ref.spectrogram(x.numpy(), ref.window_function(256, "hann"), 256, 128, power=2.0, center=False,
                             mel_filters=fb.double().numpy(), mel_floor=1e-10, log_mel="log")
    np.testing.assert_allclose(ours.numpy(), theirs, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3125.0])
def test_pure_tone_lands_in_its_bin(freq):
    sr, n_fft = 8000, 256
    t = torch.arange(sr // 2) / sr
    spec = stft(torch.sin(2 * math.pi * freq * t), n_fft, 128).abs()  # [129, frames]
    expected_bin = round(freq * n_fft / sr)
    assert (spec.argmax(0) == expected_bin).all()
    mel = log_mel(torch.sin(2 * math.pi * freq * t), sr, n_fft, 128, n_mels=40)
    fb = mel_filterbank(n_fft // 2 + 1, 40, sr)
    assert (mel.argmax(0) == fb[expected_bin].argmax()).all()


def test_mfcc_is_orthonormal_dct_of_log_mel():
    from scipy.fft import dct

    g = torch.Generator().manual_seed(1)
    lm = torch.randn(3, 32, 10, generator=g)
    ours = mfcc(lm, n_mfcc=13)
    theirs = dct(lm.numpy(), type=2, norm="ortho", axis=-2)[:, :13]
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)
    d = dct_matrix(16, 16)
    torch.testing.assert_close(d @ d.T, torch.eye(16), atol=1e-5, rtol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(129, 40, 8000, f_max=6000.0)
    with pytest.raises(ValueError, match="'htk' or 'slaney'"):
        hz_to_mel(100.0, "bark")
    with pytest.raises(ValueError, match="fewer than one frame"):
        stft(torch.zeros(100), 256, 128)
    with pytest.raises(ValueError, match="n_out"):
        dct_matrix(8, 9)
