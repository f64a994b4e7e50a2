"""Hidden tests of chapter 8's exercises (audio and video encoders): conv3d shapes, frame tokens, MFCCs, a
log-mel to fix (find the bug) and how finely a mel spectrogram resolves two tones (an experiment).

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


# --- 08.fix_log_mel: a log-mel with its axes swapped and the log of zero power ---------------------------------

def probe_log_mel(fn, cases) -> list[dict]:
    """Call the learner's log-mel on each case's waveform; report the result or the error it raised."""
    seen = []
    for wave, kwargs in cases:
        try:
            seen.append({"out": fn(wave.clone(), **kwargs)})
        except NotImplementedError:  # a blank exercise: "not implemented", not a failure
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen.append({"error": f"{type(e).__name__}: {e}"})
    return seen


def _log_mel_cases() -> list[tuple[torch.Tensor, dict]]:
    g = torch.Generator().manual_seed(8)
    quiet_start = torch.randn(4224, generator=g)
    quiet_start[:1024] = 0.0  # a silent start: zero power in every band of the first frames
    batch = torch.randn(2, 3, 3000, generator=g)  # [B, channels, samples]: 22 frames, not 32
    batch[1, 2] = 0.0  # one silent clip
    speechy = torch.randn(8000, generator=g)
    return [(quiet_start, {"sample_rate": 8000}),
            (batch, {"sample_rate": 8000, "n_fft": 256, "hop": 128, "n_mels": 32}),
            (speechy, {"sample_rate": 16000, "n_fft": 512, "hop": 160, "n_mels": 20})]


@register("08.fix_log_mel", points=2, timeout=30, kind="find-the-bug",
          hint="power = stft(wave, n_fft, hop).abs() ** 2 is [..., freqs, frames]; contract the frequency axis "
               "with the filters [freqs, mels] so the result is [..., n_mels, frames]; return log(mel + eps)")
def _fix_log_mel(fn):
    from mmcourse.data.audio import log_mel

    cases = _log_mel_cases()
    seen = fn.probe(probe_log_mel, cases) if hasattr(fn, "probe") else probe_log_mel(fn, cases)
    assert isinstance(seen, list) and len(seen) == len(cases), "the hidden test could not call your function"
    for (wave, kw), s in zip(cases, seen):
        what = f"log_mel_fixed(wave {list(wave.shape)}, {', '.join(f'{k}={v}' for k, v in kw.items())})"
        if "error" in s:
            raise AssertionError(f"{what} raised {s['error']}; the waveform may have leading axes [..., samples] "
                                 "(transpose the last two axes, not .T)")
        out = s["out"]
        assert isinstance(out, torch.Tensor), f"{what}: return a tensor, got {type(out).__name__}"
        want = log_mel(wave, **kw)  # [..., n_mels, frames]
        n_mels, frames = want.shape[-2:]
        swapped = tuple(out.shape) == (*want.shape[:-2], frames, n_mels)
        if swapped and (n_mels != frames or _close_where_finite(out.transpose(-1, -2), want)):
            raise AssertionError(f"{what} is [..., frames, n_mels] (frames first, shape {list(out.shape)}); the "
                                 f"course's spectrograms are [..., n_mels, frames] = {list(want.shape)}, mel bands "
                                 "on the rows")
        assert tuple(out.shape) == tuple(want.shape), \
            f"{what} has shape {list(out.shape)}, expected [..., n_mels, frames] = {list(want.shape)}"
        assert out.dtype == want.dtype, f"{what} is {out.dtype}; keep the waveform's dtype, {want.dtype}"
        if not torch.isfinite(out).all():
            raise AssertionError(f"{what} contains {int((~torch.isfinite(out)).sum())} non-finite values (-inf): "
                                 "a silent frame has zero power and log(0) = -inf. Add eps inside the log: "
                                 "log(mel + eps)")
        power = stft(wave, kw.get("n_fft", 256), kw.get("hop", 128)).abs()
        magnitude = torch.log(torch.einsum("...ft,fm->...mt", power, _filters(kw)) + 1e-6)
        if torch.allclose(out, magnitude, atol=1e-4, rtol=1e-4):
            raise AssertionError(f"{what} uses the magnitude |STFT|; a power spectrogram squares it: "
                                 "stft(...).abs() ** 2")
        torch.testing.assert_close(out, want, atol=1e-4, rtol=1e-4,
                                   msg=lambda m, what=what: f"{what} is not the natural log of the mel power "
                                                            f"+ eps (eps=1e-6): {m}")


def _close_where_finite(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` equals ``b`` (to 1e-4) wherever ``a`` is finite, and ``a`` is finite somewhere."""
    ok = torch.isfinite(a)
    return bool(ok.any()) and torch.allclose(a[ok].float(), b[ok].float(), atol=1e-4, rtol=1e-4)


def _filters(kw: dict) -> torch.Tensor:
    from mmcourse.data.audio import mel_filterbank

    return mel_filterbank(kw.get("n_fft", 256) // 2 + 1, kw.get("n_mels", 32), kw["sample_rate"])


def stft(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    from mmcourse.data.audio import stft as _stft

    return _stft(wave, n_fft, hop)


# --- 08.mel_resolution: how close can two tones be and still show as two peaks? ------------------------------

RES_SR, RES_N_FFT, RES_HOP, RES_N_MELS = 8000, 256, 128, 32
RES_BASES = (250, 1000, 2000)  # the lower tone of each pair, Hz
RES_GAPS = (25, 50, 75, 100, 150, 200, 300, 400, 600)  # the candidate separations, Hz


def two_tones(low: float, gap: float, n: int = 4224) -> torch.Tensor:
    """Equal sines at ``low`` and ``low + gap`` Hz, ``n`` samples at 8 kHz."""
    t = torch.arange(n, dtype=torch.float32) / RES_SR
    return torch.sin(2 * math.pi * low * t) + torch.sin(2 * math.pi * (low + gap) * t)


def spectrum_profile(wave: torch.Tensor, kind: str) -> torch.Tensor:
    """Time-averaged log power per row: per STFT bin (``kind="linear"``, 129 rows) or per mel band
    (``kind="mel"``, 32 rows)."""
    from mmcourse.data.audio import log_mel

    if kind == "linear":
        return torch.log(stft(wave, RES_N_FFT, RES_HOP).abs().pow(2) + 1e-6).mean(-1)
    if kind == "mel":
        return log_mel(wave, RES_SR, RES_N_FFT, RES_HOP, RES_N_MELS).mean(-1)
    raise ValueError(f"kind must be 'linear' or 'mel', got {kind!r}")


def n_peaks(profile: torch.Tensor, within: float = 3.0) -> int:
    """Local maxima of a 1-D profile that reach within ``within`` (natural-log units) of its maximum."""
    mid = profile[1:-1]
    top = (mid > profile[:-2]) & (mid >= profile[2:]) & (mid > profile.max() - within)
    return int(top.sum())


def smallest_resolved_gap(kind: str, low: float) -> int | None:
    """The smallest gap of RES_GAPS at which the tones at ``low`` and ``low + gap`` show two peaks."""
    for gap in RES_GAPS:
        if n_peaks(spectrum_profile(two_tones(low, gap), kind)) >= 2:
            return gap
    return None


def resolution_table() -> dict[str, dict[int, int | None]]:
    """{kind: {low: smallest resolved gap}} for both spectrograms: what 08.mel_resolution asks for."""
    return {kind: {low: smallest_resolved_gap(kind, low) for low in RES_BASES} for kind in ("linear", "mel")}


@register("08.mel_resolution", points=2, timeout=30, kind="experiment",
          hint="for each spectrogram and each lower tone, the first gap of RES_GAPS whose profile has two peaks; "
               "the linear STFT bins are equally wide in Hz, the mel bands widen with frequency")
def _mel_resolution(fn):
    got = fn()
    want = resolution_table()
    if not isinstance(got, dict):
        raise AssertionError(f"resolution() should return a dict {{'linear': {{...}}, 'mel': {{...}}}}, "
                             f"got {type(got).__name__}")
    assert sorted(got, key=str) == ["linear", "mel"], f"give the keys 'linear' and 'mel', got {sorted(got, key=str)}"
    for kind in ("linear", "mel"):
        row = got[kind]
        assert isinstance(row, dict) and sorted(row, key=str) == sorted(RES_BASES, key=str), \
            f"got[{kind!r}] should map each lower tone {list(RES_BASES)} Hz to a gap, got {row!r}"
        bad = {k: v for k, v in row.items() if type(v) is not int or v not in RES_GAPS}
        assert not bad, f"each gap is an int, one of RES_GAPS {list(RES_GAPS)}; got {bad} for {kind!r}"
    wrong = [(kind, low) for kind in ("linear", "mel") for low in RES_BASES if got[kind][low] != want[kind][low]]
    if wrong:
        kinds = sorted({k for k, _ in wrong})
        raise AssertionError(f"{len(wrong)} of 6 gaps are wrong ({', '.join(kinds)}): for each lower tone, find "
                             "the first gap whose profile has two peaks (n_peaks >= 2); a gap that is resolved "
                             "at a low frequency need not be resolved at a high one")
