"""mmcourse.transfer.probe and pretrained: feature extraction, label budgets, linear probes, the cached encoder."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmcourse.transfer.probe import extract_features, labels_per_class, linear_probe


def test_labels_per_class_is_balanced_and_reproducible():
    y = torch.arange(10).repeat(7)  # 7 samples of each of 10 classes
    idx = labels_per_class(y, 3, seed=0)
    assert torch.bincount(y[idx], minlength=10).tolist() == [3] * 10
    assert torch.equal(idx, labels_per_class(y, 3, seed=0))
    assert not torch.equal(idx, labels_per_class(y, 3, seed=1))
    assert len(set(idx.tolist())) == 30


def test_label_budget_larger_than_the_data_is_a_clear_error():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"larger than the data: classes \[1, 2\] have only \[2, 1\]"):
        labels_per_class(y, 3)
    with pytest.raises(ValueError, match=">= 1"):
        labels_per_class(y, 0)


def test_extract_features_and_linear_probe():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()  # 4 linearly separable classes
    data = SimpleNamespace(inputs={"image": x}, targets={"label": y})
    enc = nn.Linear(5, 5)
    with torch.no_grad():
        enc.weight.copy_(torch.eye(5) * 3)
        enc.bias.zero_()
    feats, targets = extract_features(enc, data, "image", batch_size=128)
    assert feats.shape == (600, 5) and torch.equal(targets["label"], y)
    torch.testing.assert_close(feats, 3 * x)
    probe = linear_probe(feats[:400], y[:400], steps=200)
    assert probe.accuracy(feats[400:], y[400:]) > 0.9
    with pytest.raises(KeyError, match="no 'text' input"):
        extract_features(enc, data, "text")
    with pytest.raises(ValueError, match=r"x \[N, D\] and y \[N\]"):
        linear_probe(feats, y[:10])


def test_world_pretrained_encoder_is_cached(tmp_path, monkeypatch):
    pytest.importorskip("mmcourse.data.world")
    from mmcourse.recipes import pretraining as pretrained

    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    recipe = pretrained.WorldPretraining(tasks=("color",), n_train=64, epochs=1, width=4, out_dim=8)
    enc = pretrained.world_pretrained_encoder(recipe, device="cpu")
    files = list((tmp_path / "pretrained").glob("*.pt"))
    assert len(files) == 1 and "color" in files[0].name
    calls = []
    monkeypatch.setattr(pretrained, "_pretrain", lambda *a: calls.append(1))
    again = pretrained.world_pretrained_encoder(recipe, device="cpu")  # loaded, not rebuilt
    assert not calls
    torch.testing.assert_close(again.pool.proj.weight, enc.pool.proj.weight)


def test_imagenet_weights_offline_message(monkeypatch):
    pytest.importorskip("torchvision")
    from mmcourse.transfer import pretrained

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="Offline"):
        pretrained.imagenet_resnet("resnet18")


def test_probe_folds_into_one_linear_layer():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 6, generator=g) * 4 + 2
    y = torch.randint(0, 3, (50,), generator=g)
    probe = linear_probe(x, y, steps=20)
    torch.testing.assert_close(probe.to_linear()(x), probe(x), rtol=1e-4, atol=1e-4)


def test_budget_curve_rows_and_bad_budget():
    from mmcourse.data.dataset import MultimodalDataset
    from mmcourse.recipes.budget import budget_curve, summarise

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 3, 4, 4, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    ds = MultimodalDataset({"image": x}, {"label": y}, {"label": ["neg", "pos"]})
    make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(48, 8))  # noqa: E731
    enc = make()
    enc.out_dim = 8
    def scratch():
        m = make()
        m.out_dim = 8
        return m
    rows = budget_curve(enc, scratch, ds, ds, task="label", modality="image", budgets=(1, 3), seeds=(0, 1),
                        layers=["1"], steps=3)
    assert len(rows) == 2 * 2 * 4 and {r["method"] for r in rows} == {"scratch", "probe", "finetune",
                                                                      "discriminative"}
    stats = summarise(rows)
    assert set(stats) == {(m, k) for m in ("scratch", "probe", "finetune", "discriminative") for k in (1, 3)}
    with pytest.raises(ValueError, match="larger than the data"):
        budget_curve(enc, scratch, ds, ds, task="label", modality="image", budgets=(100,), seeds=(0,),
                     layers=["1"])
