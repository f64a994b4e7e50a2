"""Tests for the modality probes (mmcourse/data/probes.py)."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data import make_world
from mmcourse.data.probes import probe_accuracy, probe_features, probe_modalities


def test_linear_probe_learns_a_separable_problem_and_rejects_empty():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    assert probe_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.85
    with pytest.raises(ValueError, match="at least one"):
        probe_accuracy(x[:0], y[:0], x, y)


def test_features_shapes_and_fusion_beats_single_modalities():
    ds = make_world(3600, seed=4)
    train, test = ds.subset(slice(0, 3000)), ds.subset(slice(3000, 3600))
    for m in ds.modalities:
        f = probe_features(train, m)
        assert f.shape[0] == 3000 and torch.isfinite(f).all()
    acc = probe_modalities(train, test, task="shape")
    singles = [v for k, v in acc.items() if "+" not in k]
    assert acc["audio+image+text+video"] > max(singles) + 0.03, acc
    with pytest.raises(KeyError, match="unknown task"):
        probe_modalities(train, test, task="age")
    with pytest.raises(KeyError, match="unknown modality"):
        probe_features(train.select(["image"]), "text")


def test_meta_follows_subsets():
    ds = make_world(20, seed=0)
    sub = ds.subset(torch.tensor([3, 5]))
    assert torch.equal(sub.meta["seen_image"], ds.meta["seen_image"][[3, 5]])
    assert torch.equal(ds.meta["seen_image"], ds.targets["shape"])  # redundant world: every modality shows it
