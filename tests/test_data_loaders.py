"""Tests for downloads and real-dataset parsing on small fixture files written in the original formats
(mmcourse/data/download.py, cifar10.py, avmnist.py, digits.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcourse.data import avmnist, cifar10
from mmcourse.data.digits import load_digits_dataset
from mmcourse.data.download import CorruptFileError, DatasetNotAvailable, DatasetSource, RemoteFile, fetch, status


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_cifar_archive(path: Path, per_batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    made = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in (*cifar10.TRAIN_BATCHES, "test_batch"):
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_batch).tolist()
            made[name] = data
            batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                     b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
            _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2))
        meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in cifar10.CLASSES]}
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
    return made


def _source(name: str, path: Path, algorithm: str = "md5", checksum: str | None = None) -> DatasetSource:
    digest = checksum if checksum is not None else (_md5(path) if algorithm == "md5" else "")
    return DatasetSource(name, (RemoteFile(path.as_uri(), path.name, digest, algorithm),), "fixture", "-", "-")


def test_cifar_archive_parsed_and_captions_reach_the_dataset(tmp_path):
    src_dir = tmp_path / "server"
    src_dir.mkdir()
    archive = src_dir / "cifar-10-python.tar.gz"
    made = make_cifar_archive(archive)
    source = _source("cifar10", archive)
    ds = cifar10.load_cifar10("train", root=tmp_path / "cache", source=source, caption_dropout=0.0)
    assert (tmp_path / "cache" / archive.name).exists()  # "downloaded" from a file:// URL
    assert ds.inputs["image"].shape == (15, 3, 32, 32) and ds.inputs["text"].shape == (15, cifar10.CAPTION_LEN)
    first = torch.from_numpy(made["data_batch_1"][0].reshape(3, 32, 32)).float() / 255
    mean, std = torch.tensor(cifar10.MEAN).view(3, 1, 1), torch.tensor(cifar10.STD).view(3, 1, 1)
    torch.testing.assert_close(ds.inputs["image"][0], (first - mean) / std)
    for text, label in zip(ds.vocab.decode_batch(ds.inputs["text"]), ds.targets["label"].tolist()):
        assert text.split()[-1] in cifar10.CLASS_WORDS[label], text
    test = cifar10.load_cifar10("test", root=tmp_path / "cache", source=source, caption_dropout=1.0, n=2)
    assert len(test) == 2
    assert all(t.split()[-1] in cifar10.GENERIC for t in test.vocab.decode_batch(test.inputs["text"]))


def test_cifar_refuses_foreign_pickles(tmp_path):
    evil = pickle.dumps({b"data": Path("x"), b"labels": []})
    with pytest.raises(ValueError, match="never contains|not a readable"):
        cifar10.parse_batch(evil)
    with pytest.raises(ValueError, match="b'data'"):
        cifar10.parse_batch(pickle.dumps({b"x": 1}, protocol=2))


def test_offline_error_names_url_path_and_fix(tmp_path, monkeypatch):
    source = DatasetSource("demo", (RemoteFile("https://example.invalid/demo.bin", "demo.bin", "0" * 64),),
                           "d", "-", "-")
    monkeypatch.setenv("MMCOURSE_OFFLINE", "1")
    with pytest.raises(DatasetNotAvailable) as err:
        fetch(source, tmp_path)
    msg = str(err.value)
    assert "https://example.invalid/demo.bin" in msg and str(tmp_path / "demo.bin") in msg
    assert "mmcourse data verify demo" in msg
    monkeypatch.delenv("MMCOURSE_OFFLINE")
    bad = DatasetSource("demo", (RemoteFile("http://127.0.0.1:9/demo.bin", "demo.bin", "0" * 64),), "d", "-", "-")
    with pytest.raises(DatasetNotAvailable, match="could not download http://127.0.0.1:9/demo.bin"):
        fetch(bad, tmp_path, timeout=5)
    assert not any(tmp_path.iterdir()), "a failed download left a file behind"


def test_checksum_mismatch_on_download_keeps_nothing(tmp_path):
    src = tmp_path / "server.bin"
    src.write_bytes(b"hello")
    source = _source("demo", src, "sha256", checksum="f" * 64)
    with pytest.raises(CorruptFileError, match="expected ffff"):
        fetch(source, tmp_path / "cache")
    assert not (tmp_path / "cache" / "server.bin").exists()


def test_corrupt_cache_file_is_reported(tmp_path):
    src = tmp_path / "server.bin"
    src.write_bytes(b"hello world")
    source = _source("demo", src, "sha256", checksum=hashlib.sha256(b"hello world").hexdigest())
    cache = tmp_path / "cache"
    assert fetch(source, cache)["server.bin"].read_bytes() == b"hello world"
    (cache / "server.bin").write_bytes(b"hello w")  # truncated
    with pytest.raises(CorruptFileError, match="corrupt or incomplete.*mmcourse data download demo"):
        fetch(source, cache)
    assert status(source, cache)["server.bin"].startswith("corrupt")
    # no published checksum: never called verified, and the first hash seen is not recorded as the truth
    tofu = _source("tofu", src, "sha256", checksum="")
    with pytest.warns(UserWarning, match="unverified"):
        fetch(tofu, tmp_path / "tofu")
    assert sorted(p.name for p in (tmp_path / "tofu").iterdir()) == ["server.bin"]
    assert status(tofu, tmp_path / "tofu")["server.bin"].startswith("unverified")


def _idx(arr: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[arr.dtype.type]
    return gzip.compress(bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes())


def _wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def test_idx_and_wav_parsers():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert torch.equal(avmnist.parse_idx(_idx(arr)), torch.from_numpy(arr))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        avmnist.parse_idx(gzip.decompress(_idx(arr))[:-3])
    with pytest.raises(ValueError, match="not an IDX file"):
        avmnist.parse_idx(b"\x01\x02\x03\x04")
    x, rate = avmnist.parse_wav(_wav(np.array([0, 16384, -32768])))
    assert rate == 8000 and torch.allclose(x, torch.tensor([0.0, 0.5, -1.0]))
    with pytest.raises(ValueError, match="WAV"):
        avmnist.parse_wav(b"RIFF0000WAVEjunk")


def test_avmnist_pairs_images_with_spoken_digits_of_the_same_label(tmp_path):
    rng = np.random.default_rng(1)
    server = tmp_path / "server"
    server.mkdir()
    for prefix, n in (("train", 12), ("t10k", 5)):
        (server / f"{prefix}-images-idx3-ubyte.gz").write_bytes(_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (server / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(_idx((np.arange(n) % 3).astype(np.uint8)))
    mnist = DatasetSource("mnist", tuple(RemoteFile(p.as_uri(), p.name, _md5(p), "md5")
                                         for p in sorted(server.glob("*.gz"))), "f", "-", "-")
    fsdd_path = server / "fsdd.tar.gz"
    t = np.arange(3000) / 8000
    with tarfile.open(fsdd_path, "w:gz") as tar:
        for digit in range(3):
            for idx in range(7):  # index 0-4 test, 5-6 train
                tone = (8000 * np.sin(2 * np.pi * (300 + 400 * digit) * t)).astype(np.int16)
                _add(tar, f"fsdd-1/recordings/{digit}_theo_{idx}.wav", _wav(tone))
    fsdd = DatasetSource("fsdd", (RemoteFile(fsdd_path.as_uri(), fsdd_path.name, archive="tar.gz"),), "f", "-", "-")
    ds = avmnist.load_avmnist("train", root=tmp_path / "cache", sources=(mnist, fsdd))
    assert ds.inputs["image"].shape == (12, 3, 32, 32) and ds.inputs["audio"].shape == (12, 1, 32, 32)
    # the loudest mel band reveals the tone, so it must follow the image's label
    peak = ds.inputs["audio"][:, 0].mean(-1).argmax(-1)
    for d in range(3):
        assert len(set(peak[ds.targets["label"] == d].tolist())) == 1
    assert len(set(peak.tolist())) == 3
    test = avmnist.load_avmnist("test", root=tmp_path / "cache", sources=(mnist, fsdd), n=4)
    assert len(test) == 4 and test.classes["label"][0] == "0"


def test_digits_offline_and_bad_args():
    tr, te = load_digits_dataset("train"), load_digits_dataset("test")
    assert tr.inputs["image"].shape[1:] == (3, 32, 32) and len(tr) + len(te) == 1797
    assert set(tr.targets["label"].unique().tolist()) == set(range(10))
    with pytest.raises(ValueError, match="split"):
        load_digits_dataset("valid")
    with pytest.raises(ValueError, match="multiple of 8"):
        load_digits_dataset(image_size=30)


def test_digits_split_is_the_fixed_disjoint_split_of_chapters_1_to_3():
    from mmcourse.data.digits import digits_split

    a, b = digits_split(0), digits_split(0)
    assert {k: tuple(v[0].shape) for k, v in a.items()} == {"train": (1258, 1, 8, 8), "val": (180, 1, 8, 8),
                                                            "test": (359, 1, 8, 8)}
    for k in a:
        assert torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]), f"{k} split is not deterministic"
    rows = {k: {tuple(r.tolist()) for r in v[0].flatten(1)} for k, v in a.items()}
    assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"], "test images leak into training"
    assert not torch.equal(digits_split(1)["test"][1], a["test"][1])


def test_chapter_01_loop_learns_the_digits():
    from mmcourse.data.digits import digits_split
    from mmcourse.engine.minimal import train_minibatch
    from mmcourse.layers.linear import MLP

    data = digits_split(0)
    torch.manual_seed(0)
    model = train_minibatch(MLP([64, 64, 10]), *data["train"], epochs=5, seed=0)
    x, y = data["test"]
    with torch.no_grad():
        acc = (model(x.flatten(1)).argmax(1) == y).float().mean().item()
    assert not model.training and acc > 0.9, acc
    with pytest.raises(ValueError, match="labels"):
        train_minibatch(MLP([64, 10]), x, y[:5], epochs=1)
