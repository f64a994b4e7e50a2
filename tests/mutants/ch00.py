"""Wrong answers for chapter 00's checks (mel filterbank, padding collate, bag of words, channel statistics,
the post's image-and-caption collate)."""

import math

import torch
from torch.nn.utils.rnn import pad_sequence

from . import Mutant


def _mel_edges(n_mels, f_min, f_max, linear=False):
    if linear:
        return torch.linspace(f_min, f_max, n_mels + 2, dtype=torch.float64)
    to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    mels = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2, dtype=torch.float64)
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def _triangles(freqs, edges):
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    return torch.clamp(torch.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), min=0.0).float()


def mel_transposed(n_freqs, n_mels, sample_rate, f_min, f_max):
    freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]
    return _triangles(freqs, _mel_edges(n_mels, f_min, f_max)).T


def mel_linear_edges(n_freqs, n_mels, sample_rate, f_min, f_max):
    freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]
    return _triangles(freqs, _mel_edges(n_mels, f_min, f_max, linear=True))


def mel_bins_to_nyquist_off_by_one(n_freqs, n_mels, sample_rate, f_min, f_max):
    freqs = torch.arange(n_freqs, dtype=torch.float64)[:, None] * (sample_rate / 2) / n_freqs  # k·sr/(2·n_freqs)
    return _triangles(freqs, _mel_edges(n_mels, f_min, f_max))


def collate_left_padded(samples):
    longest = max(len(s) for s, _ in samples)
    ids = torch.zeros(len(samples), longest, dtype=torch.int64)
    for i, (s, _) in enumerate(samples):
        ids[i, longest - len(s):] = s
    return ids, ids != 0, torch.tensor([y for _, y in samples])


def collate_float_mask(samples):
    longest = max(len(s) for s, _ in samples)
    ids = torch.zeros(len(samples), longest, dtype=torch.int64)
    for i, (s, _) in enumerate(samples):
        ids[i, : len(s)] = s
    return ids, (ids != 0).float(), torch.tensor([y for _, y in samples])


def collate_float_ids(samples):
    ids, mask, labels = collate_float_mask(samples)
    return ids.float(), mask.bool(), labels


def bow_counts_padding(ids, vocab_size):
    counts = torch.zeros(ids.shape[0], vocab_size)
    return counts.scatter_add_(1, ids, torch.ones(ids.shape))


def bow_presence(ids, vocab_size):
    counts = torch.zeros(ids.shape[0], vocab_size)
    counts.scatter_(1, ids, 1.0)
    counts[:, 0] = 0
    return counts


def normalise_global(x):
    return (x - x.mean()) / x.std()


def normalise_biased_std(x):
    dims = [d for d in range(x.dim()) if d != 1]
    return (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True, unbiased=False)


def normalise_per_sample(x):
    dims = list(range(1, x.dim()))
    return (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True)


MUTANTS = {
    "00.mel_filterbank": {"transposed": Mutant(mel_transposed, "transpose"), "edges linear in Hz": mel_linear_edges,
                          "bin frequencies off by one": mel_bins_to_nyquist_off_by_one},
    "00.pad_collate": {"padding on the left": Mutant(collate_left_padded, "padding 0 at the end"),
                       "float mask": Mutant(collate_float_mask, "bool"),
                       "float ids": Mutant(collate_float_ids, "int64")},
    "00.bag_of_words": {"counts padding": Mutant(bow_counts_padding, "padding"), "presence not counts": bow_presence},
    "00.normalise_channels": {"global statistics": normalise_global, "biased std": normalise_biased_std,
                              "per-sample statistics": normalise_per_sample},
}


def _caption_batch(samples):
    images = torch.stack([img for img, _, _ in samples])
    labels = torch.tensor([y for _, _, y in samples])
    return images, labels


def collate_post(samples):  # the post's batches: the captions are padded, then dropped
    return _caption_batch(samples)


def collate_captions_sorted_alone(samples):  # returns the captions, but sorted by length on their own
    images, labels = _caption_batch(samples)
    ids = pad_sequence(sorted([c for _, c, _ in samples], key=len, reverse=True), batch_first=True)
    return images, ids, ids != 0, labels


def collate_all_sorted(samples):  # aligned again, but the batch is no longer in the samples' order
    return collate_captions_in_order(sorted(samples, key=lambda s: len(s[1]), reverse=True))


def collate_captions_in_order(samples):
    images, labels = _caption_batch(samples)
    ids = pad_sequence([c for _, c, _ in samples], batch_first=True)
    return images, ids, ids != 0, labels


def collate_caption_mask_float(samples):
    images, ids, mask, labels = collate_captions_in_order(samples)
    return images, ids, mask.float(), labels


MUTANTS["00.fix_caption_collate"] = {
    "the post's batches (no captions)": Mutant(collate_post, "captions never reach"),
    "captions sorted by length alone": Mutant(collate_captions_sorted_alone, "no longer belongs"),
    "whole batch sorted by length": Mutant(collate_all_sorted, "order of the samples"),
    "float mask": Mutant(collate_caption_mask_float, "bool"),
}
