"""Tests for MultimodalDataset, its GPU-resident batch iterator and the DataLoader path (data/dataset.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from mmcourse.data import MultimodalDataset, collate_batches, make_world
from mmcourse.models import Batch


@pytest.fixture(scope="module")
def ds():
    return make_world(50, seed=0)


def test_getitem_int_slice_and_index(ds):
    b = ds[3]
    assert isinstance(b, Batch) and len(b) == 1 and b.inputs["image"].shape == (1, 3, 32, 32)
    assert len(ds[10:20]) == 10
    idx = torch.tensor([4, 0, 4])
    b = ds[idx]
    assert torch.equal(b.inputs["text"][0], ds.inputs["text"][4]) and len(b) == 3
    with pytest.raises(IndexError, match="out of range"):
        ds[50]


def test_select_and_bad_names(ds):
    sub = ds.select(["image", "text"], tasks="shape")
    assert sorted(sub.inputs) == ["image", "text"] and list(sub.targets) == ["shape"]
    assert sub.inputs["image"] is ds.inputs["image"]  # shared, not copied
    with pytest.raises(KeyError, match="unknown modality.*smell"):
        ds.select(["smell"])
    with pytest.raises(KeyError, match="unknown task.*age"):
        ds.select(tasks=["age"])
    with pytest.raises(ValueError, match="at least one"):
        ds.select([])


def test_batches_cover_every_sample_once(ds):
    seen = []
    for b in ds.batches(16, shuffle=True, seed=1):
        seen.append(b.targets["shape"])
        assert b.inputs["image"].device == ds.device
    assert sum(len(s) for s in seen) == 50
    ids = torch.cat([b.inputs["image"][:, 0, 0, 0] for b in ds.batches(16, shuffle=True, seed=1)])
    assert torch.equal(ids.sort().values, ds.inputs["image"][:, 0, 0, 0].sort().values)
    assert ds.num_batches(16) == 4 and len(list(ds.batches(16, drop_last=True))) == 3 == ds.num_batches(16, True)


def test_batches_shuffle_is_seeded(ds):
    a = torch.cat([b.targets["shape"] for b in ds.batches(8, shuffle=True, seed=5)])
    b = torch.cat([b.targets["shape"] for b in ds.batches(8, shuffle=True, seed=5)])
    c = torch.cat([b.inputs["image"][:, 0, 0, 0] for b in ds.batches(8, shuffle=True, seed=6)])
    assert torch.equal(a, b)
    assert not torch.equal(c, ds.inputs["image"][:, 0, 0, 0])
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.batches(0))


def test_dataloader_path_matches(ds):
    loader = DataLoader(ds.as_torch_dataset(), batch_size=20, collate_fn=collate_batches)
    first = next(iter(loader))
    assert isinstance(first, Batch)
    for m in ds.inputs:
        assert torch.equal(first.inputs[m], ds.inputs[m][:20])
    assert torch.equal(first.targets["color"], ds.targets["color"][:20])


def test_collate_pads_variable_text():
    items = [({"text": torch.tensor([5, 6, 7])}, {"label": torch.tensor(1)}),
             ({"text": torch.tensor([8])}, {"label": torch.tensor(0)})]
    b = collate_batches(items)
    assert torch.equal(b.inputs["text"], torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(b.targets["label"], torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="empty"):
        collate_batches([])


def test_constructor_checks():
    with pytest.raises(ValueError, match="same length"):
        MultimodalDataset({"image": torch.zeros(3, 1)}, {"label": torch.zeros(4, dtype=torch.long)}, {"label": ["a"]})
    with pytest.raises(ValueError, match="class names missing"):
        MultimodalDataset({"image": torch.zeros(3, 1)}, {"label": torch.zeros(3, dtype=torch.long)}, {})


def test_to_same_device_is_noop(ds):
    assert ds.to("cpu") is ds
