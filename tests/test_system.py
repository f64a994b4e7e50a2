"""Tests of mmcourse.system: raw world samples, preprocessing, save/load with weights_only, predict_raw."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.text import UNK
from mmcourse.data.world import world_classes
from mmcourse.models import ModelSpec, build_model
from mmcourse.system import (
    Preprocessing,
    System,
    load_system,
    raw_world,
    save_system,
    take,
)


def SystemSpec(modalities, classes, **kw):  # noqa: N802  (the old name, as data: a ModelSpec)
    if "caption_len" in kw:
        kw["max_len"] = kw.pop("caption_len")
    return ModelSpec(classes=classes, modalities=modalities, **kw)


build_system_model = build_model


@pytest.fixture(scope="module")
def raw():
    return raw_world(48, seed=3, chunk=20)


@pytest.fixture(scope="module")
def system_parts(raw):
    samples, _ = raw
    pre = Preprocessing.fit(take(samples, 0, 32), world={"image_noise": 0.45})
    classes = {k: tuple(v) for k, v in world_classes().items()}
    spec = SystemSpec(("image", "text", "audio", "video"), classes, vocab_size=len(pre.vocab), dim=8, width=4)
    torch.manual_seed(0)
    return build_system_model(spec), spec, pre


def test_raw_world_is_raw_and_reproducible(raw):
    samples, targets = raw
    assert samples["image"].shape == (48, 3, 32, 32) and samples["video"].shape[:3] == (48, 3, 8)
    assert samples["audio"].shape == (48, 4224)
    assert len(samples["text"]) == 48 and all(isinstance(t, str) and t for t in samples["text"])
    assert set(targets) == {"shape", "color", "size", "motion"}
    again, _ = raw_world(48, seed=3, chunk=20)
    torch.testing.assert_close(again["image"], samples["image"], rtol=0, atol=0)
    assert again["text"] == samples["text"]


def test_preprocessing_normalises_the_training_samples(raw):
    samples, _ = raw
    pre = Preprocessing.fit(samples)
    x = pre.transform(samples)
    for m in ("image", "audio", "video"):
        dims = [d for d in range(x[m].dim()) if d != 1]
        std, mean = torch.std_mean(x[m], dim=dims)
        torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
        torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)
    assert x["text"].shape == (48, pre.caption_len) and x["text"].dtype == torch.int64
    unseen = pre.transform({"text": ["a zebra-like circle"]})["text"][0]
    assert unseen[1] == UNK and (unseen[3:] == 0).all()


def test_save_load_gives_identical_logits(tmp_path, raw, system_parts):
    samples, _ = raw
    model, spec, pre = system_parts
    path = save_system(tmp_path / "sys.pt", model, spec, pre)
    blob = torch.load(path, weights_only=True)  # plain values only
    assert blob["preprocessing"]["words"] == list(pre.words)
    system = load_system(path)
    test = take(samples, 32, 48)
    model.eval()
    want = model(pre.transform(test))
    got = system.predict_raw(test)
    assert set(got) == set(spec.classes)
    for task in want:
        torch.testing.assert_close(got[task], want[task], rtol=0, atol=0)
    labels = system.predict_labels(take(samples, 0, 3))
    assert all(len(v) == 3 and v[0] in spec.classes[t] for t, v in labels.items())
    assert system.spec == spec and system.preprocessing == pre


def test_clear_errors(tmp_path, raw, system_parts):
    samples, _ = raw
    model, spec, pre = system_parts
    system = load_system(save_system(tmp_path / "s.pt", model, spec, pre))
    with pytest.raises(KeyError, match="missing \\['video'\\]"):
        system.predict_raw({m: v for m, v in take(samples, 0, 2).items() if m != "video"})
    with pytest.raises(ValueError, match="list of caption strings"):
        system.predict_raw({**take(samples, 0, 2), "text": "one caption"})
    with pytest.raises(ValueError, match="raw 'audio' must be a float tensor with 2 dims"):
        system.predict_raw({**take(samples, 0, 2), "audio": torch.zeros(2, 1, 32, 32)})
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved mmcourse system"):
        load_system(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="text_encoder"):
        build_system_model(SystemSpec(("text",), {"shape": ("a", "b")}, vocab_size=10, text_encoder="lstm2"))


def test_spec_round_trip_and_transformer_text():
    spec = SystemSpec(("image", "text"), {"shape": ("a", "b")}, vocab_size=20, dim=8, width=4,
                      text_encoder="transformer")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    out = build_system_model(spec)({"image": torch.randn(2, 3, 32, 32), "text": torch.randint(1, 20, (2, 12))})
    assert out["shape"].shape == (2, 2)


def test_a_system_from_spectrogram_data_wraps_a_model_trained_on_it():
    from mmcourse.data import world_splits

    w = world_splits(40, 8, 8, seed=1, modalities=("audio", "text"))
    spec = ModelSpec.for_data(w.train, dim=8, width=4)
    model = build_model(spec)
    pre = Preprocessing.for_dataset(w.train)
    assert pre.audio_input == "log_mel" and len(pre.vocab) == len(w.vocab)
    raw = {"audio": w.test.inputs["audio"], "text": w.vocab.decode_batch(w.test.inputs["text"])}
    system = System(model, spec, pre)
    with torch.no_grad():
        want = model.eval()(w.test.inputs)
    got = system.predict_raw(raw)
    for t in want:
        torch.testing.assert_close(got[t], want[t])
    with pytest.raises(ValueError, match="audio_input"):
        Preprocessing.for_dataset(w.train, audio_input="mp3")
