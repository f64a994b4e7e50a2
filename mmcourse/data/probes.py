"""Simple probes: how much of a label each modality carries, measured with a linear classifier (chapter 00).

A probe is a logistic regression on fixed, nuisance-invariant features of one modality (or of several,
concatenated): the 2-D Fourier magnitude of an image (invariant to where the shape is), a bag of words for a
caption, the time-pooled log-mel of a sound (invariant to the onset) and the Fourier magnitudes of video
frames. It needs no training of an encoder, so chapter 00 can compare modalities in seconds. The fitter is the
course's one linear probe, :func:`mmcourse.probe.linear_probe` (here with L-BFGS).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcourse.data.dataset import MultimodalDataset
from mmcourse.probe import linear_probe


def _fourier_magnitude(x: Tensor, keep: int = 6) -> Tensor:
    """``|FFT2|`` of the last two dims, the lowest ``keep`` frequencies per axis (both signs), log-scaled."""
    f = torch.fft.fft2(x).abs()  # [..., H, W]
    idx = torch.cat([torch.arange(keep), torch.arange(-keep + 1, 0)])
    f = f.index_select(-2, idx % x.shape[-2]).index_select(-1, idx % x.shape[-1])
    return torch.log1p(f).flatten(-3)


def probe_features(ds: MultimodalDataset, modality: str, vocab_size: int | None = None) -> Tensor:
    """Fixed features ``[N, D]`` of one modality for a linear probe (see the module docstring)."""
    if modality not in ds.inputs:
        raise KeyError(f"unknown modality {modality!r}; this dataset has {ds.modalities}")
    x = ds.inputs[modality]
    if modality == "image":
        return _fourier_magnitude(x)  # [N, 3*11*11]
    if modality == "video":  # frames averaged over time (a motion-blurred still), then as an image
        return _fourier_magnitude(x.mean(2))
    if modality == "audio":
        return torch.cat([x.mean(-1), x.amax(-1), x.std(-1)], dim=-1).flatten(1)  # pooled over time
    if modality == "text":
        size = vocab_size or (len(ds.vocab) if ds.vocab is not None else int(x.max()) + 1)
        bow = torch.zeros(len(x), size, device=x.device)
        bow.scatter_add_(1, x, torch.ones_like(x, dtype=bow.dtype))
        bow[:, 0] = 0  # padding is not a word
        return bow
    raise KeyError(f"no probe features for modality {modality!r}")


def probe_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor, *, epochs: int = 60,
                  weight_decay: float = 1e-3) -> Tensor:
    """Class predictions ``[M]`` for ``test_x`` of a logistic regression on standardised features, fitted
    full-batch with L-BFGS (``epochs`` iterations) by :func:`mmcourse.probe.linear_probe`."""
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("a probe needs at least one training and one test sample")
    if len(train_x) != len(train_y):
        raise ValueError(f"train_x has {len(train_x)} rows but train_y has {len(train_y)}")
    probe = linear_probe(train_x, train_y, steps=epochs, lr=1.0, weight_decay=weight_decay, optimizer="lbfgs")
    return probe.predict(test_x)


def probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, **kw: float) -> float:
    """Test accuracy of :func:`probe_predict`."""
    return float((probe_predict(train_x, train_y, test_x, **kw) == test_y).float().mean())


def probe_modalities(train: MultimodalDataset, test: MultimodalDataset, task: str = "shape",
                     groups: Sequence[Sequence[str]] | None = None, **kw: float) -> dict[str, float]:
    """Probe accuracy per group of modalities, e.g. ``{"image": 0.6, ..., "audio+image+text+video": 0.9}``.

    By default: each modality alone, then all of them together (features concatenated).
    """
    if task not in train.targets:
        raise KeyError(f"unknown task {task!r}; this dataset has tasks {train.tasks}")
    mods = train.modalities
    groups = groups or [[m] for m in mods] + [mods]
    vocab_size = len(train.vocab) if train.vocab is not None else None
    cache_tr = {m: probe_features(train, m, vocab_size) for m in {m for g in groups for m in g}}
    cache_te = {m: probe_features(test, m, vocab_size) for m in cache_tr}
    out = {}
    for g in groups:
        key = "+".join(sorted(g))
        xtr = torch.cat([cache_tr[m] for m in sorted(g)], 1)
        xte = torch.cat([cache_te[m] for m in sorted(g)], 1)
        out[key] = probe_accuracy(xtr, train.targets[task], xte, test.targets[task], **kw)
    return out
