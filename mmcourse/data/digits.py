"""scikit-learn's bundled handwritten digits as a ``MultimodalDataset`` — real data that works offline.

1,797 8x8 grey images of digits 0–9 (ships inside scikit-learn, from the UCI "Optical Recognition of
Handwritten Digits" data, CC BY 4.0). Used by chapters 00–03 when a real, tiny, offline dataset is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.data.dataset import MultimodalDataset


def load_digits_dataset(split: str = "all", *, image_size: int = 32, channels: int = 3, test_fraction: float = 0.25,
                        seed: int = 0, device: torch.device | str | None = None) -> MultimodalDataset:
    """Digits as ``image`` ``[N, channels, image_size, image_size]`` (nearest upsampling of 8x8, normalised
    with the whole set's mean/std) and task ``label`` (10 classes).

    Args:
        split: "train", "test" (a seeded random ``test_fraction`` of the samples) or "all".
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split={split!r}; use 'train', 'test' or 'all'")
    if image_size < 8 or image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8 (>= 8), got {image_size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} is out of range; allowed (0, 1)")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32) / 16.0  # [N, 8, 8], pixel values 0..16
    y = torch.tensor(bunch.target, dtype=torch.int64)
    x = (x - x.mean()) / x.std()
    x = x.repeat_interleave(image_size // 8, 1).repeat_interleave(image_size // 8, 2)
    x = x.unsqueeze(1).expand(-1, channels, -1, -1).contiguous()
    if split != "all":
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        n_test = int(round(test_fraction * len(y)))
        idx = perm[:n_test] if split == "test" else perm[n_test:]
        x, y = x[idx], y[idx]
    ds = MultimodalDataset({"image": x}, {"label": y}, {"label": [str(d) for d in range(10)]},
                           name=f"digits/{split}")
    return ds.to(device) if device is not None else ds


def digits_split(seed: int = 0, device: torch.device | str | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """The split of chapters 01–03: ``{"train", "val", "test"}`` → (images ``[N, 1, 8, 8]``, labels ``[N]``).

    A seeded fifth of the digits is the test set; the first 180 of the rest (already in a seeded random
    order) are the validation set, the remaining 1,258 the training set.
    """
    kw = dict(image_size=8, channels=1, test_fraction=0.2, seed=seed, device=device)
    train, test = load_digits_dataset("train", **kw), load_digits_dataset("test", **kw)
    x, y = train.inputs["image"], train.targets["label"]
    return {"train": (x[180:], y[180:]), "val": (x[:180], y[:180]),
            "test": (test.inputs["image"], test.targets["label"])}
