"""Data augmentation on the device, a whole batch at once: random crop and flip for images, time and frequency
masking (SpecAugment) for spectrograms.

Chapter 04 writes each transform and trains with it; the real-data loaders use :func:`default_augment` for
images and audio. Every function takes a batch ``[B, ...]`` already on its device and an optional
``torch.Generator`` (same seed, same device, same result); the random draws are ``[B]``-sized tensors, so
there is no Python loop over samples. Augmentation is for training batches only: never augment the
validation or test data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.batch import Batch

Transform = Callable[[Tensor, torch.Generator | None], Tensor]
PAD_MODES = ("constant", "reflect", "replicate")


def _uniform(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` uniform numbers in [0, 1) on ``x``'s device, drawn from ``generator`` (on its own device)."""
    if generator is None:
        return torch.rand(n, device=x.device)
    return torch.rand(n, generator=generator, device=generator.device).to(x.device)


def _randint(high: Tensor | int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` integers, the i-th uniform in ``[0, high_i)`` (``high`` an int or an int64 ``[n]`` tensor)."""
    return (_uniform(n, x, generator) * high).long()


def _check_batch(x: Tensor, min_dim: int, what: str) -> None:
    if x.dim() < min_dim:
        raise ValueError(f"{what} needs a batch with at least {min_dim} dims, got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} needs a float tensor, got {x.dtype}")


def random_crop(x: Tensor, padding: int = 4, *, generator: torch.Generator | None = None,
                mode: str = "constant") -> Tensor:
    """Pad by ``padding`` pixels on every side, then cut out a window of the original size at a random offset
    per sample (the CIFAR-10 recipe: a random shift of up to ``padding`` pixels).

    Args:
        x: ``[B, ..., H, W]`` (images ``[B, C, H, W]``; a video ``[B, C, T, H, W]`` gets one shift per clip).
        padding: the largest shift in pixels (0 returns ``x`` unchanged).
        generator: the source of randomness (default torch's global one on ``x``'s device).
        mode: ``constant`` (zeros: the mean of normalised inputs), ``reflect`` or ``replicate``.

    Returns:
        A tensor of ``x``'s shape.
    """
    _check_batch(x, 3, "random_crop")
    if mode not in PAD_MODES:
        raise ValueError(f"mode={mode!r}; use one of {PAD_MODES}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    shape = x.shape
    b, h, w = shape[0], shape[-2], shape[-1]
    if mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} needs images larger than it, got {h}x{w}")
    flat = x.reshape(b, -1, h, w)  # [B, M, H, W]: all channels / frames of a sample move together
    m = flat.shape[1]
    padded = F.pad(flat, (padding,) * 4, mode=mode)  # [B, M, H+2p, W+2p]
    oy = _randint(2 * padding + 1, b, x, generator)  # [B] top offsets
    ox = _randint(2 * padding + 1, b, x, generator)  # [B] left offsets
    rows = oy[:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)  # [B, W]
    out = padded.gather(2, rows[:, None, :, None].expand(b, m, h, w + 2 * padding))  # [B, M, H, W+2p]
    out = out.gather(3, cols[:, None, None, :].expand(b, m, h, w))  # [B, M, H, W]
    return out.reshape(shape)


def random_flip(x: Tensor, p: float = 0.5, *, dim: int = -1, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each sample along ``dim`` (default the width: a horizontal flip) with probability ``p``.

    Only for data whose meaning survives the mirror (photos of objects, yes; digits and text, no).
    """
    _check_batch(x, 2, "random_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    if dim % x.dim() == 0:
        raise ValueError("random_flip cannot flip the batch dimension (dim 0)")
    flip = _uniform(x.shape[0], x, generator) < p  # [B]
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(dim), x)


def _stripes(x: Tensor, dim: int, max_width: int, n_masks: int, generator: torch.Generator | None) -> Tensor:
    """Bool ``[B, size]``: ``n_masks`` stripes per sample along ``dim``, each of width uniform in
    ``0..max_width`` at a uniform start (SpecAugment's masks)."""
    b, size = x.shape[0], x.shape[dim]
    if max_width < 0 or n_masks < 0:
        raise ValueError(f"max_width and n_masks must be >= 0, got {max_width} and {n_masks}")
    if max_width > size:
        raise ValueError(f"mask width {max_width} exceeds the {size} positions of dim {dim}")
    widths = _randint(max_width + 1, b * n_masks, x, generator).view(b, n_masks)  # [B, n]
    starts = _randint(size - widths.flatten() + 1, b * n_masks, x, generator).view(b, n_masks)  # [B, n]
    pos = torch.arange(size, device=x.device)  # [size]
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # [B, n, size]
    return inside.any(1)  # [B, size]


def time_mask(x: Tensor, max_width: int, n_masks: int = 1, *, value: float = 0.0,
              generator: torch.Generator | None = None) -> Tensor:
    """Set ``n_masks`` random stripes of frames (width 0..``max_width`` each) to ``value``, per sample.

    Args:
        x: a spectrogram batch ``[B, ..., n_mels, frames]``; time is the last dim.
        value: the fill; 0 is the mean of a normalised spectrogram (what SpecAugment uses).
    """
    _check_batch(x, 3, "time_mask")
    mask = _stripes(x, -1, max_width, n_masks, generator)  # [B, frames]
    return x.masked_fill(mask.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1]), value)


def freq_mask(x: Tensor, max_width: int, n_masks: int = 1, *, value: float = 0.0,
              generator: torch.Generator | None = None) -> Tensor:
    """Set ``n_masks`` random bands of mel channels (width 0..``max_width`` each) to ``value``, per sample.

    Args:
        x: a spectrogram batch ``[B, ..., n_mels, frames]``; frequency is the second-to-last dim.
    """
    _check_batch(x, 3, "freq_mask")
    mask = _stripes(x, -2, max_width, n_masks, generator)  # [B, n_mels]
    return x.masked_fill(mask.view(x.shape[0], *([1] * (x.dim() - 3)), x.shape[-2], 1), value)


@dataclass(frozen=True)
class ImageAugment:
    """Random crop after ``padding`` pixels of padding, then a horizontal flip with probability ``flip``."""

    padding: int = 4
    flip: float = 0.5
    mode: str = "constant"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = random_crop(x, self.padding, generator=generator, mode=self.mode)
        return random_flip(x, self.flip, generator=generator) if self.flip > 0 else x


@dataclass(frozen=True)
class SpecAugment:
    """SpecAugment's masking (Park et al. 2019) without time warping: ``n_freq`` frequency bands of up to
    ``freq_width`` mel channels and ``n_time`` time stripes of up to ``time_width`` frames, filled with
    ``value``."""

    freq_width: int = 6
    n_freq: int = 1
    time_width: int = 6
    n_time: int = 1
    value: float = 0.0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = freq_mask(x, min(self.freq_width, x.shape[-2]), self.n_freq, value=self.value, generator=generator)
        return time_mask(x, min(self.time_width, x.shape[-1]), self.n_time, value=self.value, generator=generator)


class BatchAugment:
    """Augment some modalities of a :class:`~mmcourse.batch.Batch` (training batches only).

    Args:
        transforms: ``{modality: transform}``, a transform being ``f(x, generator) -> x`` such as
            :class:`ImageAugment` or :class:`SpecAugment`; other modalities pass through untouched.
        seed: seeds the generator this object owns (one per device, made on first use), so two objects
            built with the same seed augment the same batches in the same way.

    Example:
        >>> aug = BatchAugment({"image": ImageAugment(padding=2)}, seed=0)   # doctest: +SKIP
        >>> batch = aug(batch)
    """

    def __init__(self, transforms: Mapping[str, Transform], seed: int = 0):
        if not transforms:
            raise ValueError("BatchAugment needs at least one {modality: transform}")
        self.transforms = dict(transforms)
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """This object's generator on ``device`` (created and seeded on first use)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def __call__(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        inputs = dict(batch.inputs)
        for m in sorted(self.transforms):
            if m in inputs:
                x = inputs[m]
                inputs[m] = self.transforms[m](x, generator or self.generator(x.device))
        return Batch(inputs, batch.targets, batch.present)

    def __repr__(self) -> str:
        return f"BatchAugment({self.transforms}, seed={self.seed})"


def default_augment(modalities: list[str] | tuple[str, ...], seed: int = 0) -> BatchAugment | None:
    """The course's default training augmentation: :class:`ImageAugment` for ``image`` and
    :class:`SpecAugment` for ``audio``; None when no modality has one (text and video are left alone)."""
    defaults: dict[str, Transform] = {"image": ImageAugment(), "audio": SpecAugment()}
    chosen = {m: defaults[m] for m in modalities if m in defaults}
    return BatchAugment(chosen, seed=seed) if chosen else None
