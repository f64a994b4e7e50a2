"""Diagrams of chapter 08: the audio front end (waveform → STFT → power → mel → log → MFCC) and 3-D versus
(2+1)-D video convolutions.

``audio_front_end`` follows ``mmcourse.data.audio.log_mel`` and ``mfcc`` step by step, and draws what the
signal looks like after each step (computed here with numpy on a small two-note sound with the world's
settings: 8 kHz, n_fft 256, hop 128, 32 mel bands). ``video_convolutions`` follows
``mmcourse.encoders.video``: a 3×3×3 kernel against a 1×3×3 spatial then 3×1×1 temporal pair whose middle
width ``M`` is chosen to match the 3-D kernel's parameter count.
"""

from __future__ import annotations

import numpy as np

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import LINE, MODALITY_COLOURS, TEXT, tint

SR, N_FFT, HOP, N_MELS, N_MFCC = 8000, 256, 128, 32, 13


def _sound() -> np.ndarray:
    """0.53 s: a 300 Hz tone with two harmonics, then a 520 Hz tone, and a little noise."""
    t = np.arange(N_FFT + 31 * HOP) / SR
    tone = lambda hz: np.sin(2 * np.pi * hz * t)
    a = (t < 0.25) * (tone(300) + 0.6 * tone(900) + 0.4 * tone(1500))
    b = (t >= 0.25) * (tone(520) + 0.5 * tone(1040))
    return a + b + 0.05 * np.random.default_rng(0).standard_normal(t.shape)


def _mel_filters() -> np.ndarray:
    """HTK mel filterbank ``[n_freqs, n_mels]`` as in ``mmcourse.data.audio.mel_filterbank``."""
    mel = np.linspace(0, 2595 * np.log10(1 + SR / 2 / 700), N_MELS + 2)
    edges = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.linspace(0, SR / 2, N_FFT // 2 + 1)
    rel = edges[None, :] - freqs[:, None]
    width = np.diff(edges)
    return np.clip(np.minimum(-rel[:, :-2] / width[:-1], rel[:, 2:] / width[1:]), 0, None)


def _features() -> dict[str, np.ndarray]:
    wave = _sound()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = np.lib.stride_tricks.sliding_window_view(wave, N_FFT)[::HOP] * window  # [frames, n_fft]
    power = np.abs(np.fft.rfft(frames, axis=-1)).T ** 2  # [n_freqs, frames]
    fb = _mel_filters()
    logmel = np.log(fb.T @ power + 1e-6)  # [n_mels, frames]
    m, k = np.arange(N_MELS), np.arange(N_MFCC)[:, None]
    dct = np.cos(np.pi * k * (m + 0.5) / N_MELS) * np.sqrt(2 / N_MELS)
    dct[0] /= np.sqrt(2)
    return {"wave": wave, "power": np.log(power + 1e-6), "fb": fb, "logmel": logmel, "mfcc": dct @ logmel}


def audio_front_end(mfcc: bool = True) -> Diagram:
    """Waveform → frames × Hann window → rFFT → |·|² → mel filterbank → log (→ DCT → MFCC), with shapes and
    a picture of the signal after each step."""
    c = Canvas(6.8, 6.4, "audio_front_end" if mfcc else "audio_front_end_logmel")
    f = _features()
    x, px, pw, ph = 1.55, 3.55, 2.6, 0.5  # box column, picture left edge, picture width, height
    steps = [("wave", "waveform", "audio", "[B, n]"),
             ("frames", "frames: n_fft samples, hop apart,\n× Hann window", "function", "[B, frames, n_fft]"),
             ("fft", "rFFT of each frame, |·|²", "function", "[B, n_fft/2+1, frames]"),
             ("mel", "mel filterbank (fixed matrix)\n[n_fft/2+1, n_mels]", "function", "[B, n_mels, frames]"),
             ("log", "log(· + ε)", "function", "[B, n_mels, frames]")]
    if mfcc:
        steps.append(("dct", "DCT-II, keep the first n_mfcc", "function", "[B, n_mfcc, frames]"))
    y, gap = 6.0, 0.98
    ys = {}
    for i, (name, label, kind_, _) in enumerate(steps):
        c.box(name, (x, y), label, kind_=kind_, w=2.5, size=9.5)
        ys[name] = y
        if i:
            c.arrow(steps[i - 1][0], name, label=steps[i - 1][3], label_side="left")
        y -= gap
    c.box("out", (x, y + 0.1), "MFCC" if mfcc else "log-mel spectrogram", kind_="audio")
    c.arrow(steps[-1][0], "out", label=steps[-1][3], label_side="left")
    # pictures of the signal: the first 0.1 s of the waveform, and the first frames' windows over it
    wave = f["wave"]
    zoom = 800
    t = np.linspace(px, px + pw, zoom)
    c.line(t, ys["wave"] + 0.22 * wave[:zoom] / np.abs(wave).max(), color=MODALITY_COLOURS["audio"], lw=0.8,
           zorder=2)
    c.text((px + pw / 2, ys["wave"] - 0.3), "the first 0.1 s", va="top")
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    for k in range((zoom - N_FFT) // HOP + 1):
        s0 = px + k * HOP * pw / zoom
        c.line(s0 + np.arange(N_FFT) * pw / zoom, ys["frames"] - 0.22 + 0.44 * hann,
               color=LINE if k % 2 == 0 else MODALITY_COLOURS["audio"], lw=0.9, zorder=2)
    c.text((px + pw / 2, ys["frames"] - 0.3), "Hann windows of the first frames", va="top")
    pictures = [("fft", f["power"], "power over time (shown on a log scale)"),
                ("log", f["logmel"], "log-mel, the encoder's input\n[B, 1, n_mels, frames]")]
    if mfcc:
        pictures.append(("dct", f["mfcc"], "MFCC: decorrelated, smoother in frequency"))
    for name, img, caption in pictures:
        c.image(img[::-1], (px, ys[name] - ph / 2, px + pw, ys[name] + ph / 2), cmap="cividis")
        c.text((px + pw / 2, ys[name] - ph / 2 - 0.06), caption, va="top")
    fb = f["fb"]
    freqs = np.linspace(px, px + pw, fb.shape[0])
    for j in range(0, N_MELS, 2):
        c.line(freqs, ys["mel"] - ph / 2 + ph * fb[:, j] / fb[:, j].max(), color=MODALITY_COLOURS["audio"], lw=0.8,
               zorder=2)
    c.text((px + pw / 2, ys["mel"] - ph / 2 - 0.06), "mel filters over frequency (every 2nd)", va="top")
    alt = ("The audio front end: the waveform is cut into overlapping frames multiplied by a Hann window, each "
           "frame's FFT is squared into a power spectrum, a fixed bank of triangular mel filters maps the "
           "frequency bins to mel bands, and the logarithm gives the log-mel spectrogram"
           + ("; a DCT-II keeping the first n_mfcc coefficients gives the MFCCs" if mfcc else "")
           + ". A picture beside each step shows the signal at that point.")
    return c.finish(alt)


def _cube(c: Canvas, x: float, y: float, w: float, h: float, d: float, colour: str, label: str = "") -> None:
    """An oblique box (front face ``w`` × ``h``, depth ``d`` going up-right) with its bottom-left at (x, y)."""
    from matplotlib.patches import Polygon

    k = 0.6  # depth drawn at 45° shortened
    front = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    top = [(x, y + h), (x + w, y + h), (x + w + k * d, y + h + k * d), (x + k * d, y + h + k * d)]
    side = [(x + w, y), (x + w + k * d, y + k * d), (x + w + k * d, y + h + k * d), (x + w, y + h)]
    for poly, a in ((front, 0.45), (top, 0.3), (side, 0.6)):
        c.patch(Polygon(poly, closed=True, fc=tint(colour, a), ec=LINE, lw=0.9, zorder=3))
    if label:
        c.text((x + w / 2, y - 0.08), label, va="top", color=TEXT)


def _clip(c: Canvas, x: float, y: float, size: float, frames: int = 4) -> None:
    """A video clip: ``frames`` frames stacked in depth (time goes up and to the right)."""
    from matplotlib.patches import Rectangle

    colour = MODALITY_COLOURS["video"]
    for k in range(frames - 1, -1, -1):
        ox = oy = 0.16 * k
        c.patch(Rectangle((x + ox, y + oy), size, size, fc=tint(colour, 0.18 + 0.06 * k), ec=LINE, lw=0.8,
                                 zorder=2))


def video_convolutions() -> Diagram:
    """A 3×3×3 convolution beside its (2+1)-D factorisation (1×3×3 in space, then 3×1×1 in time)."""
    c = Canvas(6.9, 4.6, "video_convolutions")
    colour = MODALITY_COLOURS["video"]
    for x0, title in ((0.2, "3-D convolution"), (3.65, "(2+1)-D convolution")):
        c.title((x0 + 1.55, 4.35), title)
        _clip(c, x0 + 0.35, 2.45, 1.0)
        c.text((x0 + 0.85, 2.38), "H × W", va="top")
        c.text((x0 + 1.95, 3.05), "time T", ha="left")
    depth = 2 * 0.16 / 0.6  # a kernel 3 frames deep (the frames are 0.16 in apart, drawn at 0.6 scale)
    _cube(c, 0.8, 2.7, 0.33, 0.33, depth, colour)
    c.text((1.75, 2.08), "one kernel, 3×3×3: slides over T, H and W", va="top", color=TEXT)
    _cube(c, 4.1, 2.75, 0.33, 0.33, 0.06, colour)
    _cube(c, 4.85, 2.6, 0.1, 0.1, depth, colour)
    c.text((5.2, 2.08), "two kernels: 1×3×3 (space),\nthen 3×1×1 (time)", va="top", color=TEXT)
    c.box("c3d", (1.75, 1.45), "Conv3d 3×3×3 → BN → ReLU")
    c.text((1.75, 1.1), "27·Cin·Cout weights: space\nand time in one kernel", va="top")
    c.box("sp", (5.2, 1.45), "Conv3d 1×3×3 (space) → BN → ReLU")
    c.box("tm", (5.2, 0.7), "Conv3d 3×1×1 (time) → BN → ReLU")
    c.arrow("sp", "tm", label="[B, M, T, H, W]", label_side="right")
    c.text((5.2, 0.35), "9·Cin·M + 3·M·Cout weights with\nM = ⌊27·Cin·Cout / (9·Cin + 3·Cout)⌋:\n"
           "the same count, one more ReLU", va="top")
    c.text((1.75, 0.3), "input [B, C, T, H, W]; time is never pooled,\nso tokens() gives one token per frame",
           va="top")
    alt = ("Two ways to convolve a video clip of T frames: a 3-D convolution whose 3×3×3 kernel spans space and "
           "time at once (27·Cin·Cout weights), and its (2+1)-D factorisation, a 1×3×3 spatial convolution to M "
           "channels followed by a 3×1×1 temporal one, with M chosen so the weight count matches and an extra "
           "ReLU in between.")
    return c.finish(alt)
