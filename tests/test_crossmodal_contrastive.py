"""mmcourse.crossmodal.contrastive: InfoNCE equals cross-entropy over the similarity matrix; τ; two towers learn."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.batch import Batch
from mmcourse.crossmodal.contrastive import (
    ContrastiveModel,
    InfoNCELoss,
    LearnableTemperature,
    info_nce,
    similarity_logits,
)
from mmcourse.crossmodal.retrieval import retrieval_report
from mmcourse.engine import fit


class VecEncoder(nn.Module):
    """A tiny 'image' tower: an MLP over a feature vector."""

    def __init__(self, in_dim: int, out_dim: int = 16):
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, out_dim))

    def forward(self, x):
        return self.net(x)


class BagEncoder(nn.Module):
    """A tiny 'text' tower: mean of word embeddings over non-pad tokens."""

    def __init__(self, vocab: int, out_dim: int = 16):
        super().__init__()
        self.out_dim = out_dim
        self.emb = nn.Embedding(vocab, out_dim, padding_idx=0)

    def forward(self, ids):
        mask = (ids != 0).float().unsqueeze(-1)
        return (self.emb(ids) * mask).sum(1) / mask.sum(1).clamp_min(1)


def paired_data(n: int = 100, seed: int = 0):
    """Scene (a, b) with a, b in 0..9 -> a noisy 'image' vector and a two-word 'caption'."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.arange(n) % 10, (torch.arange(n) // 10) % 10
    proj = torch.randn(20, 12, generator=g)
    onehot = torch.cat([F.one_hot(a, 10), F.one_hot(b, 10)], 1).float()
    image = onehot @ proj + 0.05 * torch.randn(n, 12, generator=g)
    text = torch.stack([3 + a, 13 + b], 1)  # word ids, 0 is pad
    return {"image": image, "text": text}


def test_info_nce_equals_cross_entropy_of_similarities():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    for t in (0.07, 0.5, 1.0):
        s = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / t
        target = torch.arange(7)
        ref = (F.cross_entropy(s, target) + F.cross_entropy(s.T, target)) / 2
        torch.testing.assert_close(info_nce(a, b, t), ref)
    torch.testing.assert_close(similarity_logits(a, b, 0.5), s * 1.0 / 0.5)


def test_info_nce_gradients_and_perfect_alignment():
    a = torch.randn(6, 4, dtype=torch.double, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, 0.3).double(), (a, b))
    eye = torch.eye(6)
    assert info_nce(eye, eye, 0.01) < 1e-3  # orthogonal, matching pairs: almost no loss
    assert info_nce(eye, eye.roll(1, 0), 0.01) > 10  # every pair mismatched


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="batch sizes differ"):
        info_nce(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="dimensions differ"):
        info_nce(torch.randn(4, 8), torch.randn(4, 6))
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        info_nce(torch.randn(4, 8, 2), torch.randn(4, 8, 2))
    for bad in (0.0, -0.1, torch.tensor(-1.0)):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            info_nce(torch.randn(4, 8), torch.randn(4, 8), bad)
    with pytest.raises(ValueError, match="0 < min_temperature"):
        LearnableTemperature(init=0.0)
    with pytest.raises(ValueError, match="out_dim"):
        ContrastiveModel(nn.Linear(3, 3), BagEncoder(10), 8)


def test_learnable_temperature_is_log_parametrised_and_clamped():
    t = LearnableTemperature(0.07)
    assert math.isclose(float(t().detach()), 0.07, rel_tol=1e-5)
    with torch.no_grad():
        t.log_scale.fill_(100.0)  # would mean τ = e^-100
    assert math.isclose(float(t().detach()), 0.01, rel_tol=1e-5)
    with torch.no_grad():
        t.log_scale.fill_(-100.0)
    assert math.isclose(float(t().detach()), 1.0, rel_tol=1e-5)
    fixed = LearnableTemperature(0.1, learn=False)
    assert not fixed.log_scale.requires_grad


def test_two_towers_learn_to_retrieve_through_fit():
    torch.manual_seed(0)
    data = paired_data(100)
    model = ContrastiveModel(VecEncoder(12), BagEncoder(23), dim=16)
    loss = InfoNCELoss(("image", "text"), temperature=0.1)
    za, zb = model.embed_all(data)
    before = retrieval_report(za, zb)["image→text"]["R@1"]
    hist = fit(model, Batch(data, {}), loss=loss, epochs=60, lr=1e-2, batch_size=50, drop_last=True, seed=0,
               clip_grad=1.0, device="cpu", progress=False)
    losses = hist["train_loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert hist.last["train_temperature"] != pytest.approx(0.1), "fit optimised the loss's temperature"
    za, zb = model.embed_all(data)
    assert za.shape == zb.shape == (100, 16)
    torch.testing.assert_close(za.norm(dim=1), torch.ones(100))
    report = retrieval_report(za, zb)
    assert report["image→text"]["R@1"] > 0.5 > before + 0.3, (before, report)
    assert report["text→image"]["R@1"] > 0.5, report


def test_model_speaks_the_dict_contract():
    model = ContrastiveModel(VecEncoder(12), BagEncoder(23), dim=8, modalities=("image", "text"))
    out = model(paired_data(4))
    assert set(out) == {"image", "text"} and out["image"].shape == (4, 8)
    with pytest.raises(KeyError, match="lacks"):
        model({"image": torch.randn(2, 12)})
    with pytest.raises(KeyError, match="compares outputs"):
        InfoNCELoss(("image", "caption"))(out, None)


def test_frozen_tower_stays_frozen_and_in_eval_mode():
    data = paired_data(60)
    text = BagEncoder(23)
    text.requires_grad_(False)
    before = text.emb.weight.clone()
    model = ContrastiveModel(VecEncoder(12), text, dim=8)
    fit(model, Batch(data, {}), loss=InfoNCELoss(), epochs=2, lr=1e-2, batch_size=30, device="cpu", progress=False)
    torch.testing.assert_close(text.emb.weight, before)
    model.train()
    assert model.enc_b.training is False and model.enc_a.training is True
