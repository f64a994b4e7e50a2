"""mmcourse.analysis.robustness: missing-modality evaluation, noise sweeps, permutation importance."""

import pytest
import torch
from torch import nn

from mmcourse.analysis.robustness import corrupt, missing_modality_eval, noise_sweep, permutation_importance
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.fusion import ConcatFusion
from mmcourse.models import MultimodalModel


class Pick(nn.Module):
    """Reads the label off feature 0 of its modality (a hand-built 'perfect' encoder)."""

    out_dim = 1

    def forward(self, x):
        return x[:, :1]


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(2, (n,), generator=g)
    sign = (2 * y - 1).float()
    a = torch.randn(n, 2, generator=g)
    a[:, 0] = 3 * sign  # a tells the label
    b = torch.randn(n, 2, generator=g)  # b is noise
    return MultimodalDataset({"a": a, "b": b}, {"label": y}, {"label": ["neg", "pos"]})


def _model():
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        head.bias.zero_()
    return MultimodalModel({"a": Pick(), "b": Pick()}, ConcatFusion({"a": 1, "b": 1}), {"label": head})


def test_missing_modality_eval():
    res = missing_modality_eval(_model(), _data(), max_missing=2)
    assert set(res) == {(), ("a",), ("b",)}  # dropping both would drop everything: skipped
    assert res[()] == 1.0 and res[("b",)] == 1.0
    assert res[("a",)] == pytest.approx(0.5, abs=0.1)  # without a: chance


def test_noise_sweep_degrades_only_the_useful_modality():
    model, data = _model(), _data()
    on_a = noise_sweep(model, data, "a", [0.0, 3.0, 30.0])
    on_b = noise_sweep(model, data, "b", [0.0, 30.0])
    assert on_a[0] == 1.0 and on_a[0] > on_a[1] > on_a[2]
    assert on_b == [1.0, 1.0]
    with pytest.raises(KeyError, match="no modality 'c'"):
        noise_sweep(model, data, "c", [0.0])


def test_permutation_importance():
    imp = permutation_importance(_model(), _data(), repeats=2)
    assert imp["a"] > 0.3 and imp["b"] == 0.0


def test_corrupt_tokens():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[5, 6, 7, 0, 0]] * 200)
    out = corrupt(ids, 0.5, g, vocab_size=50)
    assert (out[:, 3:] == 0).all(), "padding must stay padding"
    changed = (out[:, :3] != ids[:, :3]).float().mean()
    assert 0.35 < changed < 0.55
    assert corrupt(ids, 0.0, g).equal(ids)
    with pytest.raises(ValueError, match="replacement probability"):
        corrupt(ids, 2.0, g)
