"""Tests for AV-digits (mmcourse/data/avdigits.py) on WAV fixtures the tests write, on the shipped subset, and on
the shared FSDD archive when it is present; and for the normalisation helpers (mmcourse/data/normalize.py)."""

from __future__ import annotations

import argparse
import io
import math
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse.data import avdigits
from mmcourse.data import cli as data_cli
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.data.normalize import Standardizer, per_example_standardize, standardize_datasets

SPEAKERS = ("ann", "bob", "cat")


def wav_bytes(x: np.ndarray, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def tone(digit: int, speaker: int, index: int) -> np.ndarray:
    """A decaying tone whose pitch tells the digit; speakers differ in length and loudness."""
    n = 2400 + 2000 * speaker + 50 * index  # speaker 2 (cat) speaks for longer than 0.78 s
    t = np.arange(n) / 8000
    return (0.3 + 0.2 * speaker) * np.sin(2 * math.pi * (200 + 60 * digit) * t) * np.exp(-2 * t)


@pytest.fixture
def fsdd_folder(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for s, name in enumerate(SPEAKERS):
        for d in range(10):
            for i in range(3):
                (folder / f"{d}_{name}_{i}.wav").write_bytes(wav_bytes(tone(d, s, i)))
    (folder / "README.md").write_text("not a recording")
    return folder


def test_folder_and_archive_read_the_same(fsdd_folder, tmp_path):
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fsdd_folder, arcname="free-spoken-digit-dataset/recordings")
    a, b = avdigits.read_recordings(fsdd_folder), avdigits.read_recordings(archive)
    assert len(a) == len(b) == 90 and a.speaker_names() == list(SPEAKERS)
    assert a.speakers == b.speakers and torch.equal(a.digits, b.digits) and torch.equal(a.index, b.index)
    i = a.speakers.index("bob") + 3 * 4 + 2  # bob, digit 4, index 2 (sorted by speaker, digit, index)
    assert (a.speakers[i], int(a.digits[i]), int(a.index[i])) == ("bob", 4, 2)
    torch.testing.assert_close(a.waves[i], torch.from_numpy(tone(4, 1, 2)).float(), atol=1e-4, rtol=0)


def test_bad_sources_raise_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no spoken digits at"):
        avdigits.read_recordings(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no spoken digits"):
        avdigits.read_recordings(tmp_path / "empty")
    (tmp_path / "empty" / "3_ann_0.wav").write_bytes(wav_bytes(tone(3, 0, 0), rate=16000))
    with pytest.raises(ValueError, match="16000 Hz.*8000 Hz"):
        avdigits.read_recordings(tmp_path / "empty")


def test_split_holds_one_speaker_out(fsdd_folder):
    rec = avdigits.read_recordings(fsdd_folder)
    train, test = avdigits.avdigits_split(rec, "bob", seed=3)
    assert isinstance(train, MultimodalDataset) and (len(train), len(test)) == (60, 30)
    bob = rec.speaker_names().index("bob")
    assert (test.meta["speaker"] == bob).all() and not (train.meta["speaker"] == bob).any()
    assert train.inputs["image"].shape == (60, 3, 16, 16) and test.inputs["audio"].shape == (30, 1, 32, 48)
    assert train.classes["label"] == [str(d) for d in range(10)] and train.tasks == ["label"]
    # no handwritten image is on both sides, and every image shows the digit that is spoken
    assert not set(train.meta["image_index"].tolist()) & set(test.meta["image_index"].tolist())
    _, labels = avdigits.digit_images()
    assert torch.equal(labels[train.meta["image_index"]], train.targets["label"])
    # audio is normalised clip by clip (loud speaker 'cat' looks like quiet 'ann'); images about unit variance
    a = train.inputs["audio"]
    torch.testing.assert_close(a.mean(dim=(1, 2, 3)), torch.zeros(60), atol=1e-4, rtol=0)
    torch.testing.assert_close(a.std(dim=(1, 2, 3), unbiased=False), torch.ones(60), atol=1e-3, rtol=0)
    assert 0.8 < train.inputs["image"].std() < 1.2
    again, _ = avdigits.avdigits_split(rec, "bob", seed=3)
    assert torch.equal(again.inputs["image"], train.inputs["image"])  # seeded: same pairs, same noise
    with pytest.raises(ValueError, match="not a speaker.*'ann', 'bob', 'cat'"):
        avdigits.avdigits_split(rec, "theo")


def test_noise_knobs(fsdd_folder):
    rec = avdigits.read_recordings(fsdd_folder)
    clean, _ = avdigits.avdigits_split(rec, "ann", image_noise=0.0)
    noisy, _ = avdigits.avdigits_split(rec, "ann", image_noise=1.0, audio_snr_db=0.0)
    images, _ = avdigits.digit_images()
    torch.testing.assert_close(clean.inputs["image"][:, 0, ::2, ::2], images[clean.meta["image_index"]])
    assert not torch.equal(clean.inputs["audio"], noisy.inputs["audio"])
    with pytest.raises(ValueError, match="multiple of 8"):
        avdigits.avdigits_split(rec, "ann", image_size=12)


def test_subset_written_and_read_back(fsdd_folder, tmp_path):
    rec = avdigits.read_recordings(fsdd_folder)
    path = tmp_path / "subset.npz"
    assert avdigits.write_subset(rec, path, per_digit=2) == 3 * 10 * 2
    sub = avdigits.read_recordings(path)
    assert sub.speaker_names() == list(SPEAKERS) and sorted(set(sub.index.tolist())) == [0, 1]
    j = next(i for i in range(len(rec)) if rec.speakers[i] == "cat" and rec.digits[i] == 7 and rec.index[i] == 1)
    k = next(i for i in range(len(sub)) if sub.speakers[i] == "cat" and sub.digits[i] == 7 and sub.index[i] == 1)
    orig = avdigits.centre_crop(rec.waves[j], avdigits.CLIP_SAMPLES)
    assert len(rec.waves[j]) > avdigits.CLIP_SAMPLES and len(sub.waves[k]) == avdigits.CLIP_SAMPLES  # cut
    snr = 10 * math.log10(orig.pow(2).mean() / (orig - sub.waves[k]).pow(2).mean())
    assert snr > 30, snr  # 8-bit mu-law keeps the waveform to better than 30 dB


def test_mulaw_round_trip():
    x = torch.linspace(-1, 1, 1001)
    q = avdigits.mulaw_encode(x)
    assert q.dtype == torch.int8 and q.min() == -127 and q.max() == 127
    err = (avdigits.mulaw_decode(q) - x).abs()
    assert err[x.abs() < 0.01].max() < 5e-4 and err.max() < 0.03  # fine steps for quiet samples


def test_shipped_subset_always_there():
    rec = avdigits.read_recordings()
    assert len(rec) == 500 and rec.speaker_names() == list(avdigits.SPEAKERS)
    counts = torch.zeros(5, 10, dtype=torch.long)
    for s, d in zip(rec.speakers, rec.digits.tolist()):
        counts[avdigits.SPEAKERS.index(s), d] += 1
    assert (counts == 10).all()
    assert avdigits.SUBSET.stat().st_size < 2_000_000
    assert "CC BY-SA 4.0" in (avdigits.SUBSET.parent / "README.md").read_text()
    test = avdigits.load_avdigits("test", held_out="lucas")
    assert len(test) == 100 and test.inputs["audio"].shape == (100, 1, 32, 48)
    assert torch.isfinite(test.inputs["audio"]).all()
    with pytest.raises(ValueError, match="split="):
        avdigits.load_avdigits("val")


def _shared_archive() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        p = parent / "shared" / "data" / "fsdd-5-speakers.tar.gz"
        if p.exists():
            return p
    return None


@pytest.mark.skipif(_shared_archive() is None, reason="the shared FSDD archive (../shared/data/"
                    "fsdd-5-speakers.tar.gz) is not next to this checkout")
def test_shared_archive_and_subset_agree():
    rec = avdigits.read_recordings(_shared_archive())
    assert len(rec) == 2500 and rec.speaker_names() == list(avdigits.SPEAKERS)
    sub = avdigits.read_recordings()
    j = next(i for i in range(len(rec)) if rec.speakers[i] == "nicolas" and rec.digits[i] == 5 and rec.index[i] == 9)
    k = next(i for i in range(len(sub)) if sub.speakers[i] == "nicolas" and sub.digits[i] == 5 and sub.index[i] == 9)
    orig = avdigits.centre_crop(rec.waves[j], avdigits.CLIP_SAMPLES)
    assert (orig - sub.waves[k]).pow(2).mean() < 1e-3 * orig.pow(2).mean()
    train, test = avdigits.avdigits_split(rec, "yweweler")
    assert (len(train), len(test)) == (2000, 500)


def test_cli_lists_avdigits(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    for argv in (["data", "list"], ["data", "info", "avdigits"]):
        args = parser.parse_args(argv)
        assert args._run(args) == 0
    out = capsys.readouterr().out
    assert "avdigits" in out and "CC BY-SA 4.0" in out


def test_per_example_standardize():
    x = torch.randn(4, 1, 8, 6) * torch.tensor([1.0, 5.0, 0.1, 2.0]).view(4, 1, 1, 1) + 3
    y = per_example_standardize(x)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(1, 2, 3), unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert torch.equal(per_example_standardize(torch.full((2, 3), 7.0)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="float"):
        per_example_standardize(torch.ones(2, 3, dtype=torch.int64))


def test_standardizer_uses_training_statistics_only():
    train = torch.randn(100, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + torch.tensor(
        [0.0, 10.0, -5.0]).view(1, 3, 1, 1)
    s = Standardizer.fit(train)
    out = s(train)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    shifted = s(train + 1.0)  # test data are mapped with the training statistics, not their own
    assert shifted.mean(dim=(0, 2, 3))[0] > 0.9
    assert all(isinstance(v, float) for v in s.mean + s.std)  # plain values: saves with weights_only=True
    with pytest.raises(ValueError, match="fitted on 3 channels"):
        s(torch.randn(2, 1, 4, 4))


def test_standardize_datasets():
    def ds(shift: float) -> MultimodalDataset:
        return MultimodalDataset({"image": torch.randn(20, 3, 4, 4) * 4 + shift,
                                  "audio": torch.randn(20, 1, 8, 8) + shift,
                                  "text": torch.randint(1, 9, (20, 5))}, {"label": torch.arange(20) % 2},
                                 {"label": ["a", "b"]})
    torch.manual_seed(0)
    raw_tr, raw_te = ds(0.0), ds(2.0)
    tr, te = standardize_datasets(raw_tr, raw_te)
    assert abs(tr.inputs["image"].mean()) < 1e-4 and te.inputs["image"].mean() > 0.3  # train statistics
    torch.testing.assert_close(te.inputs["audio"].mean(dim=(1, 2, 3)), torch.zeros(20), atol=1e-4, rtol=0)
    assert te.inputs["text"] is raw_te.inputs["text"]  # ids are not touched
    with pytest.raises(KeyError, match="not in the training set"):
        standardize_datasets(raw_tr.select(["audio", "text"]), raw_te)
