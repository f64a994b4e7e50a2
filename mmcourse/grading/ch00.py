"""Hidden tests of chapter 0's exercises (``solutions/00_multimodal_world.ipynb``): a mel filterbank, a
padding collate function with its mask, a bag of words, per-channel normalisation, and a find-the-bug: the
source post's image-and-caption batches, whose captions never reach the model."""

from __future__ import annotations

from typing import Any

import torch

from mmcourse.data.audio import mel_filterbank
from mmcourse.grading.ch01 import assert_tensor_close
from mmcourse.grading.registry import register


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@register("00.mel_filterbank", points=2, timeout=30,
          hint="n_mels + 2 points equally spaced in mel (2595·log10(1 + f/700)) from f_min to f_max; filter m "
               "rises from point m to m+1 and falls to m+2; columns are filters, rows STFT bins 0..sr/2")
def _mel_filterbank(fn: Any) -> None:
    for n_freqs, n_mels, sr, f_min, f_max in [(129, 32, 8000, 0.0, 4000.0), (257, 40, 16000, 20.0, 7600.0),
                                              (65, 8, 4000, 50.0, 1500.0)]:
        want = mel_filterbank(n_freqs, n_mels, sr, f_min, f_max)
        got = fn(n_freqs, n_mels, sr, f_min, f_max)
        what = f"mel_filterbank(n_freqs={n_freqs}, n_mels={n_mels}, sample_rate={sr}, f_min={f_min}, f_max={f_max})"
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (n_mels, n_freqs):
            raise AssertionError(f"{what}: shape is [n_mels, n_freqs]; return [n_freqs, n_mels] (transpose)")
        assert_tensor_close(got, want, what, atol=1e-5, rtol=1e-4)


def _samples(seed: int, n: int, vocab: int = 20) -> list[tuple[torch.Tensor, int]]:
    g = _gen(seed)
    lengths = torch.randint(1, 9, (n,), generator=g).tolist()
    return [(torch.randint(3, vocab, (k,), generator=g), int(torch.randint(10, (1,), generator=g))) for k in lengths]


@register("00.pad_collate", points=2, timeout=30,
          hint="L = the longest sequence; ids = zeros(B, L, dtype=int64) then copy each sequence to the left; "
               "mask = ids != 0; labels = tensor of the labels")
def _pad_collate(fn: Any) -> None:
    for seed, n in enumerate([4, 1, 9]):
        samples = _samples(seed, n)
        out = fn(samples)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise AssertionError(f"pad_collate must return a tuple (ids, mask, labels), got {type(out).__name__}")
        ids, mask, labels = out
        longest = max(len(s) for s, _ in samples)
        want = torch.zeros(n, longest, dtype=torch.int64)
        for i, (s, _) in enumerate(samples):
            want[i, : len(s)] = s
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64:
            raise AssertionError(f"ids must be an int64 tensor, got {getattr(ids, 'dtype', type(ids).__name__)}")
        if tuple(ids.shape) != (n, longest):
            raise AssertionError(f"ids for {n} sequences, the longest {longest} tokens, must have shape "
                                 f"[{n}, {longest}]; got {list(ids.shape)}")
        if not torch.equal(ids, want):
            row = int((ids != want).any(1).nonzero()[0])
            raise AssertionError(f"ids row {row} is {ids[row].tolist()}, expected {want[row].tolist()} "
                                 "(tokens first, padding 0 at the end)")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or not torch.equal(mask, want != 0):
            raise AssertionError("mask must be a bool tensor, True at real tokens and False at padding")
        want_labels = torch.tensor([y for _, y in samples])
        if not isinstance(labels, torch.Tensor) or not torch.equal(labels.long(), want_labels):
            raise AssertionError("labels must be a tensor of the samples' labels, in order")


@register("00.bag_of_words", points=1, timeout=30,
          hint="counts = zeros(B, V); counts.scatter_add_(1, ids, ones); then zero the PAD column 0")
def _bag_of_words(fn: Any) -> None:
    g = _gen(5)
    ids = torch.randint(0, 12, (6, 9), generator=g)
    ids[:, 6:] = 0  # padding
    want = torch.zeros(6, 12)
    for i in range(6):
        for t in ids[i].tolist():
            if t != 0:
                want[i, t] += 1
    got = fn(ids, 12)
    assert_tensor_close(got.float() if isinstance(got, torch.Tensor) else got, want,
                        "bag_of_words(ids [6, 9], vocab_size=12) (padding id 0 must not be counted)")


@register("00.normalise_channels", points=1, timeout=30,
          hint="statistics over every dim except dim 1: x.mean(dims, keepdim=True), x.std(dims, keepdim=True)")
def _normalise_channels(fn: Any) -> None:
    for seed, shape in enumerate([(8, 3, 5, 5), (4, 1, 6, 7), (3, 3, 2, 4, 4)]):
        g = _gen(20 + seed)
        scale = torch.arange(1, shape[1] + 1, dtype=torch.float32).view(1, -1, *[1] * (len(shape) - 2))
        x = torch.randn(*shape, generator=g) * scale * 3 + scale
        dims = [d for d in range(x.dim()) if d != 1]
        want = (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True)
        assert_tensor_close(fn(x), want, f"normalise_channels(x {list(shape)})", atol=1e-4, rtol=1e-4)


# --- 00.fix_caption_collate: the source post's batches, whose captions never reach the model ------------------

def _captioned_samples(seed: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """``n`` samples (image [3, 4, 5], caption ids [L_i] never 0, label); lengths in no sorted order."""
    g = _gen(300 + seed)
    lengths = torch.randint(1, 10, (n,), generator=g).tolist()
    if n > 2:  # make sure that sorting by length reorders the batch
        lengths[0], lengths[1] = 2, 9
    return [(torch.randn(3, 4, 5, generator=g), torch.randint(3, 30, (k,), generator=g),
             int(torch.randint(10, (1,), generator=g))) for k in lengths]


def _padded(captions: list[torch.Tensor]) -> torch.Tensor:
    ids = torch.zeros(len(captions), max(len(c) for c in captions), dtype=torch.int64)
    for i, c in enumerate(captions):
        ids[i, : len(c)] = c
    return ids


@register("00.fix_caption_collate", points=2, timeout=30, kind="find-the-bug",
          hint="return (images, ids, mask, labels): stack the images, pad the captions in the samples' own order "
               "(pad_sequence(..., batch_first=True) pads with 0), mask = ids != 0, labels an int64 tensor")
def _fix_caption_collate(fn: Any) -> None:
    for seed, n in enumerate([6, 1, 11]):
        samples = _captioned_samples(seed, n)
        what = f"caption_collate(a list of {n} (image, caption, label) samples)"
        out = fn(samples)
        if isinstance(out, tuple) and len(out) == 2:
            raise AssertionError(f"{what} returns 2 tensors, like the post's: the captions never reach the batch "
                                 "(and so never reach the model); return (images, ids, mask, labels)")
        if not (isinstance(out, tuple) and len(out) == 4):
            raise AssertionError(f"{what} must return the tuple (images, ids, mask, labels), got "
                                 f"{type(out).__name__}{'' if not isinstance(out, tuple) else f' of {len(out)}'}")
        images, ids, mask, labels = out
        want = _padded([c for _, c, _ in samples])
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64:
            raise AssertionError(f"{what}: ids must be an int64 tensor, got "
                                 f"{getattr(ids, 'dtype', type(ids).__name__)}")
        if tuple(ids.shape) != tuple(want.shape):
            raise AssertionError(f"{what}: ids must have shape {list(want.shape)} (one row per sample, as long as "
                                 f"the longest caption), got {list(ids.shape)}")
        if not torch.equal(ids, want):
            order = sorted(range(n), key=lambda i: len(samples[i][1]), reverse=True)
            by_length = _padded([samples[i][1] for i in order])
            if torch.equal(ids, by_length):
                lab = labels.tolist() if isinstance(labels, torch.Tensor) else None
                if lab == [samples[i][2] for i in order]:
                    raise AssertionError(f"{what}: the whole batch is sorted by caption length; keep the order of "
                                         "the samples (row i of every tensor is sample i)")
                raise AssertionError(f"{what}: the captions are sorted by length but the images and labels are "
                                     "not: caption i no longer belongs to image i. Keep the samples' order")
            row = int((ids != want).any(1).nonzero()[0])
            raise AssertionError(f"{what}: ids row {row} is {ids[row].tolist()}, expected {want[row].tolist()} "
                                 "(sample i's caption in row i, padding 0 at the end)")
        want_images = torch.stack([img for img, _, _ in samples])
        assert_tensor_close(images, want_images, f"{what}: images (stack them in the samples' order)", atol=0, rtol=0)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or not torch.equal(mask, want != 0):
            raise AssertionError(f"{what}: mask must be a bool tensor, True at real tokens and False at padding")
        want_labels = torch.tensor([y for _, _, y in samples], dtype=torch.int64)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or not torch.equal(labels,
                                                                                              want_labels):
            raise AssertionError(f"{what}: labels must be an int64 tensor of the samples' labels, in their order")
