"""Normalising stored inputs: per-example standardisation and statistics fitted on a training split.

The contract says float inputs "are normalised" (about zero mean, unit variance per channel). Loaders in
``mmcourse.data`` do it for you; these helpers do it for spectrograms or images you bring yourself
(``book/bring_your_own_data.md``, chapters 8 and 9):

- :func:`per_example_standardize` — each sample by its own mean and std. For log-mel spectrograms this is
  *per-clip* normalisation: it removes the recording's loudness and microphone gain (an additive offset in
  log power), which otherwise tells speakers apart better than the words do.
- :class:`Standardizer` — per-channel mean and std fitted on the *training* split only, then applied to
  every split (statistics from test data would leak it into training). Plain floats, so it can be saved.
- :func:`standardize_datasets` — both at once for ``MultimodalDataset`` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data.dataset import MultimodalDataset


def per_example_standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Each sample ``x[i]`` minus its mean, divided by its std (over all its non-batch dims).

    Example: log-mels ``[B, 1, n_mels, frames]`` of clips recorded at different volumes come out with the same
    mean (0) and spread (1) per clip. A constant sample becomes zeros (no division by zero).
    """
    if not x.is_floating_point():
        raise ValueError(f"per_example_standardize needs a float tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"per_example_standardize needs a batch [B, ...] of at least 2 dims, got {list(x.shape)}")
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


@dataclass
class Standardizer:
    """Per-channel ``(x - mean) / std`` with statistics fitted on training data (channel = dim 1).

    ``Standardizer.fit(train_images)`` then ``standardizer(test_images)``. The fields are plain lists of
    floats, so a standardiser can be stored next to a checkpoint and loaded with ``weights_only=True``.
    """

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: Tensor, eps: float = 1e-5) -> Standardizer:
        """Mean and std of each channel of ``x`` ``[N, C, ...]`` over all samples and positions."""
        if not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 2:
            raise ValueError(f"Standardizer.fit needs float data [N >= 2, C, ...], got {list(x.shape)} {x.dtype}")
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()  # [C, N * ...]
        return cls(flat.mean(1).tolist(), (flat.std(1, unbiased=False) + eps).tolist())

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"this Standardizer was fitted on {len(self.mean)} channels; got input {list(x.shape)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std


def standardize_datasets(train: MultimodalDataset, *others: MultimodalDataset,
                         per_example: Sequence[str] = ("audio",)) -> tuple[MultimodalDataset, ...]:
    """Normalise the float inputs of ``train`` and ``others`` the way the contract expects.

    Modalities in ``per_example`` (default: audio, i.e. per-clip normalisation) are standardised sample by
    sample; every other float modality gets a per-channel :class:`Standardizer` fitted on ``train`` alone.
    Integer inputs (text ids) are left alone. Returns ``(train, *others)`` as new datasets.
    """
    fitted = {m: Standardizer.fit(x) for m, x in train.inputs.items()
              if x.is_floating_point() and m not in per_example}

    def apply(ds: MultimodalDataset) -> MultimodalDataset:
        inputs = {}
        for m, x in ds.inputs.items():
            if not x.is_floating_point():
                inputs[m] = x
            elif m in per_example:
                inputs[m] = per_example_standardize(x)
            elif m in fitted:
                inputs[m] = fitted[m](x)
            else:
                raise KeyError(f"modality {m!r} of {ds.name!r} is not in the training set, so it has no statistics")
        return MultimodalDataset(inputs, ds.targets, ds.classes, ds.vocab, ds.name, ds.meta)

    return tuple(apply(ds) for ds in (train, *others))
