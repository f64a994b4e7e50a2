"""Tests for the synthetic world (mmcourse/data/world.py, render.py, captions.py, sound.py)."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data import WorldConfig, make_world, world_splits
from mmcourse.data.captions import MAX_CAPTION_WORDS, world_lexicon
from mmcourse.data.render import SHAPES, shape_alpha


@pytest.fixture(scope="module")
def splits():
    return world_splits(300, 100, 100, seed=3)


def test_shapes_dtypes_and_classes(splits):
    ds = splits.train
    assert len(ds) == 300
    assert ds.inputs["image"].shape == (300, 3, 32, 32)
    assert ds.inputs["text"].shape == (300, WorldConfig().caption_len) and ds.inputs["text"].dtype == torch.int64
    assert ds.inputs["audio"].shape == (300, 1, 32, 32)
    assert ds.inputs["video"].shape == (300, 3, 8, 32, 32)
    assert ds.classes["shape"][0] == "circle" and len(ds.classes["shape"]) == 10
    for task, names in ds.classes.items():
        t = ds.targets[task]
        assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < len(names)


def test_float_inputs_are_normalised_per_channel(splits):
    for m in ("image", "audio", "video"):
        x = splits.train.inputs[m].transpose(0, 1).reshape(splits.train.inputs[m].shape[1], -1)
        torch.testing.assert_close(x.mean(1), torch.zeros(x.shape[0]), atol=1e-3, rtol=0)
        torch.testing.assert_close(x.std(1), torch.ones(x.shape[0]), atol=1e-3, rtol=0)


def test_same_seed_same_tensors_and_other_seed_differs():
    cfg = WorldConfig(video_frames=4)
    a, b = make_world(64, seed=7, config=cfg), make_world(64, seed=7, config=cfg)
    c = make_world(64, seed=8, config=cfg)
    for m in a.inputs:
        assert torch.equal(a.inputs[m], b.inputs[m]), m
    for t in a.targets:
        assert torch.equal(a.targets[t], b.targets[t]), t
    assert not torch.equal(a.inputs["image"], c.inputs["image"])


def test_splits_are_disjoint(splits):
    imgs = [s.inputs["image"].reshape(len(s), -1) for s in (splits.train, splits.val, splits.test)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert torch.cdist(imgs[i], imgs[j]).min() > 1.0, "a sample appears in two splits"
    assert len(splits.val) == 100 and len(splits.test) == 100


def test_vocab_built_from_train_and_captions_never_mention_motion(splits):
    v = splits.vocab
    assert v.itos[:3] == ["<pad>", "<unk>", "<cls>"]
    texts = v.decode_batch(splits.train.inputs["text"])
    assert all(t.split() and t.split()[0] in ("a", "there", "this", "i") for t in texts)
    for forbidden in ("moving", "moves", "up", "down", "upward", "downward"):
        assert forbidden not in v, forbidden
    # padding only at the end
    ids = splits.train.inputs["text"]
    mask = ids != 0
    assert torch.equal(mask, mask.cummin(dim=1).values)
    assert mask.sum(1).max() <= MAX_CAPTION_WORDS


def test_caption_names_shape_when_not_dropped():
    ds = make_world(200, seed=1, config=WorldConfig(caption_shape_dropout=0.0, synonyms=False))
    texts = ds.vocab.decode_batch(ds.inputs["text"])
    for t, s in zip(texts, ds.targets["shape"].tolist()):
        assert SHAPES[s] in t.split(), (t, SHAPES[s])
    ds = make_world(200, seed=1, config=WorldConfig(caption_shape_dropout=1.0))
    assert not any(SHAPES[s] in t.split() for t, s in zip(ds.vocab.decode_batch(ds.inputs["text"]),
                                                         ds.targets["shape"].tolist()))


def test_shape_masks_are_distinct_and_centred():
    n = len(SHAPES)
    alpha = shape_alpha(torch.arange(n), torch.full((n,), 15.5), torch.full((n,), 15.5), torch.full((n,), 10.0))
    assert alpha.shape == (n, 32, 32) and float(alpha.min()) >= 0 and float(alpha.max()) <= 1
    flat = alpha.reshape(n, -1)
    dist = torch.cdist(flat, flat) + torch.eye(n) * 1e9
    assert dist.min() > 2.0, "two shape classes render (almost) the same mask"
    assert (flat.sum(1) > 20).all(), "a shape is almost empty"


def test_motion_only_visible_in_video():
    cfg = WorldConfig(image_noise=0.0, video_noise=0.0, clutter=0.0, video_spin=0.0)
    ds = make_world(64, seed=2, config=cfg, modalities=("video",))
    v = ds.inputs["video"]  # [N, 3, T, H, W]
    mass = (v - v.amin(dim=(2, 3, 4), keepdim=True)).sum(1)  # [N, T, H, W]
    grid = torch.arange(32.0)
    cx = (mass.sum(2) * grid).sum(-1) / mass.sum((2, 3))  # [N, T]
    cy = (mass.sum(3) * grid).sum(-1) / mass.sum((2, 3))
    dx, dy = cx[:, -1] - cx[:, 0], cy[:, -1] - cy[:, 0]
    pred = torch.where(dx.abs() > dy.abs(), torch.where(dx > 0, 0, 1), torch.where(dy > 0, 2, 3))
    assert (pred == ds.targets["motion"]).float().mean() > 0.9


def test_synergistic_spread_needs_two_modalities():
    cfg = WorldConfig(spread="synergistic")
    ds = make_world(2000, seed=0, config=cfg, modalities=("text",))
    # caption names the visual shape a, label is (a + b) mod 10: the shape word alone is ~chance
    lex = world_lexicon()
    texts = [t.split() for t in lex.decode_batch(ds.inputs["text"])]
    named = torch.tensor([next((i for i, s in enumerate(SHAPES) if s in t), -1) for t in texts])
    hit = (named == ds.targets["shape"])[named >= 0].float().mean()
    assert hit < 0.2, f"caption predicts the synergistic label too well ({hit:.2f})"


@pytest.mark.parametrize("knob,value", [("image_noise", -0.1), ("clutter", 1.5), ("audio_snr_db", 100.0),
                                        ("caption_shape_dropout", 2.0), ("video_frames", 1),
                                        ("video_frames", 8.5), ("caption_len", 5), ("word_dropout", float("nan"))])
def test_bad_knobs_raise_naming_value_and_range(knob, value):
    with pytest.raises(ValueError, match=knob):
        WorldConfig(**{knob: value})
    with pytest.raises(ValueError, match="allowed|must be"):
        WorldConfig(**{knob: value})


def test_bad_spread_and_unknown_knob_and_sizes():
    with pytest.raises(ValueError, match="redundant, unique, synergistic"):
        WorldConfig(spread="everywhere")
    with pytest.raises(ValueError, match="unknown WorldConfig knob"):
        WorldConfig().replace(loudness=3)
    with pytest.raises(ValueError, match="n >= 1"):
        make_world(0)
    with pytest.raises(ValueError, match="n_val"):
        world_splits(10, 0, 10)
    with pytest.raises(KeyError, match="smell"):
        make_world(4, modalities=("image", "smell"))


def test_video_frames_knob():
    ds = make_world(8, seed=0, config=WorldConfig(video_frames=4), modalities=("video",))
    assert ds.inputs["video"].shape == (8, 3, 4, 32, 32)


def test_unique_spread_shows_the_label_in_one_modality_only():
    ds = make_world(500, seed=0, config=WorldConfig(spread="unique", unique_modality="text"), modalities=("text",))
    assert torch.equal(ds.meta["seen_text"], ds.targets["shape"])
    for m in ("image", "audio", "video"):
        agree = (ds.meta[f"seen_{m}"] == ds.targets["shape"]).float().mean()
        assert agree < 0.2, f"{m} shows the label in a 'unique to text' world ({agree:.2f})"
    with pytest.raises(ValueError, match="unique_modality"):
        WorldConfig(spread="unique", unique_modality="smell")
