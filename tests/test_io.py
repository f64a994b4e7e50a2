"""mmcourse.io: atomic writes leave the old file or the whole new one; cached() builds once across processes."""

import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from mmcourse.io import atomic_torch_save, atomic_write_bytes, cache_dir, cached


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new content")
    assert p.read_bytes() == b"new content"
    assert [f.name for f in tmp_path.iterdir()] == ["a.bin"], "temp files must not be left behind"


def test_failed_save_keeps_old_file(tmp_path):
    p = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(2)}, p)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"w": Unpicklable()}, p)
    assert torch.equal(torch.load(p, weights_only=True)["w"], torch.ones(2))
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ckpt.pt"]


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path / "c"))
    assert cache_dir("x") == tmp_path / "c" / "x" and (tmp_path / "c" / "x").is_dir()


def _build_in_child(args):
    path, counter = args
    def build():
        with open(counter, "a") as f:
            f.write("x")
        return {"t": torch.arange(3)}
    return cached(path, build)["t"].tolist()


def test_cached_builds_once_across_processes(tmp_path):
    path, counter = tmp_path / "art.pt", tmp_path / "count.txt"
    with mp.get_context("spawn").Pool(2) as pool:
        out = pool.map(_build_in_child, [(path, counter)] * 4)
    assert out == [[0, 1, 2]] * 4
    assert Path(counter).read_text() == "x"
