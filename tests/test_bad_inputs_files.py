"""Files: a full disk, an unwritable folder, a killed save, a corrupt cache and the umask (mmcourse/io.py, the
checkpoints and the cached pretrained encoder).

The tests run as any user (root included), so unwritable folders and full disks are simulated by making the
low-level call fail with the errno the real fault gives.
"""

import errno
import io as pyio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import mmcourse.io as mio
from mmcourse.encoders import SmallCNN
from mmcourse.engine import load_checkpoint, save_checkpoint
from mmcourse.engine.checkpoint import read_checkpoint
from mmcourse.io import (
    STALE_AFTER,
    DiskFullError,
    FolderNotWritable,
    atomic_torch_save,
    atomic_write_bytes,
    cache_dir,
    cached,
    sweep_stale,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname().replace(".", "-")
REAL_FDOPEN = os.fdopen


class _FullDisk(pyio.RawIOBase):
    """A file whose writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    def __init__(self, fd, room=100):
        self.real, self.room = REAL_FDOPEN(fd, "wb"), room

    def writable(self):
        return True

    def write(self, b):
        self.room -= len(b)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(b)

    def fileno(self):
        return self.real.fileno()

    def close(self):
        self.real.close()
        super().close()


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(mio.os, "fdopen", lambda fd, mode="wb": _FullDisk(fd))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_disk_during_torch_save_names_path_and_free_space(tmp_path, full_disk):
    path = tmp_path / "model.pt"
    with pytest.raises(DiskFullError, match=rf"cannot save {path}: the disk is full .*free on its file system"):
        atomic_torch_save({"w": torch.zeros(10_000)}, path)
    assert _names(tmp_path) == [], "nothing half-written is left"


def test_full_disk_during_a_byte_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"old")
    monkeypatch.setattr(mio.os, "fdopen", lambda fd, mode="wb": _FullDisk(fd, room=2))
    with pytest.raises(DiskFullError, match=r"a.bin: the disk is full.*previous file, if any, is unchanged"):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old" and _names(tmp_path) == ["a.bin"]


def test_full_disk_during_a_checkpoint_save_is_a_disk_full_error(tmp_path, full_disk):
    with pytest.raises(DiskFullError, match="ckpt.pt: the disk is full"):
        save_checkpoint(tmp_path / "ckpt.pt", torch.nn.Linear(50, 50))


def test_disk_full_error_is_an_oserror():
    assert issubclass(DiskFullError, OSError) and issubclass(FolderNotWritable, PermissionError)


def test_read_only_folder_on_save_is_named_read_only(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(mio.os, "open", refuse)
    with pytest.raises(FolderNotWritable, match=rf"folder {tmp_path} is read-only"):
        atomic_torch_save({"w": torch.ones(1)}, tmp_path / "m.pt")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_torch_save({"w": torch.ones(1)}, tmp_path / "m.pt")
        atomic_write_bytes(tmp_path / "b.bin", b"x")
        save_checkpoint(tmp_path / "c.pt", torch.nn.Linear(2, 2))
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"m.pt": mode, "b.bin": mode,
                                                                             "c.pt": mode}


def test_next_save_sweeps_the_temp_file_of_a_dead_writer(tmp_path):
    stale = tmp_path / f".ckpt.pt.{HOST}.{_dead_pid()}.abcd1234.tmp"
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "ckpt.pt", torch.nn.Linear(2, 2))
    assert _names(tmp_path) == ["ckpt.pt"]


def test_next_load_sweeps_the_temp_file_of_a_dead_writer(tmp_path):
    save_checkpoint(tmp_path / "ckpt.pt", torch.nn.Linear(2, 2))
    (tmp_path / f".ckpt.pt.{HOST}.{_dead_pid()}.abcd1234.tmp").write_bytes(b"half")
    read_checkpoint(tmp_path / "ckpt.pt")
    assert _names(tmp_path) == ["ckpt.pt"]


def test_a_live_writers_temp_file_is_never_swept(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".ckpt.pt.{HOST}.{writer.pid}.abcd1234.tmp"
        live.write_bytes(b"being written")
        save_checkpoint(tmp_path / "ckpt.pt", torch.nn.Linear(2, 2))
        assert live.exists()
    finally:
        writer.kill()
        writer.wait()


def test_temp_files_of_another_machine_are_swept_only_when_stale(tmp_path):
    fresh = tmp_path / ".m.pt.otherhost.12345.abcd1234.tmp"
    old = tmp_path / ".m.pt.otherhost.12346.abcd1234.tmp"
    legacy = tmp_path / ".m.pt.k2j3h4.tmp"  # the old mkstemp names
    for p in (fresh, old, legacy):
        p.write_bytes(b"x")
    long_ago = time.time() - STALE_AFTER - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(legacy, (long_ago, long_ago))
    assert sorted(p.name for p in sweep_stale(tmp_path / "m.pt")) == sorted([old.name, legacy.name])
    assert fresh.exists()


KILL_DURING_SAVES = """
import sys, torch
sys.path.insert(0, {root!r})
from mmcourse.engine import save_checkpoint
model = torch.nn.Linear(300, 300)
print("ready", flush=True)
while True:
    save_checkpoint({path!r}, model)
"""


def test_kill_during_saves_then_next_save_leaves_no_temp_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent(KILL_DURING_SAVES.format(root=str(ROOT), path=str(path))))
    leftovers = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers += len(list(tmp_path.glob(".ckpt.pt.*.tmp")))
        load_checkpoint(path)  # never corrupt, and the load sweeps what the kill left
        assert not list(tmp_path.glob(".ckpt.pt.*.tmp"))
    assert _names(tmp_path) == ["ckpt.pt", "loop.py"], f"{leftovers} temp files were left by the kills"


def test_corrupt_cached_file_is_named_and_rebuilt(tmp_path):
    path = tmp_path / "artefact.pt"
    path.write_bytes(os.urandom(3000))
    with pytest.warns(UserWarning, match=rf"cached file {path} is corrupt.*rebuilding"):
        out = cached(path, lambda: {"t": torch.arange(3)})
    assert out["t"].tolist() == [0, 1, 2]
    assert torch.load(path, weights_only=True)["t"].tolist() == [0, 1, 2], "the cache file was replaced"


def test_cached_file_the_check_rejects_is_rebuilt(tmp_path):
    path = tmp_path / "artefact.pt"
    atomic_torch_save({"wrong": torch.zeros(1)}, path)

    def check(obj):
        if "t" not in obj:
            raise KeyError("t")

    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert cached(path, lambda: {"t": torch.ones(1)}, check=check)["t"].item() == 1.0


def test_corrupt_cached_pretrained_encoder_is_rebuilt(tmp_path, monkeypatch):
    from mmcourse.recipes import pretraining as pretrained

    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    recipe = pretrained.WorldPretraining(tasks=("color",), n_train=64, epochs=1, width=4, out_dim=8)
    good = SmallCNN(8, width=4, grid=recipe.grid).state_dict()
    monkeypatch.setattr(pretrained, "_pretrain", lambda *a: good)
    path = tmp_path / "pretrained" / f"{recipe.key()}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 garbage that is not a torch file")
    with pytest.warns(UserWarning, match=rf"{path.name} is corrupt"):
        enc = pretrained.world_pretrained_encoder(recipe, device="cpu")
    torch.testing.assert_close(enc.pool.proj.weight, good["pool.proj.weight"])
    assert torch.load(path, weights_only=True).keys() == good.keys()


def test_unwritable_home_makes_cache_dir_say_what_to_set(tmp_path, monkeypatch):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MMCOURSE_CACHE", raising=False)
    with pytest.raises(FolderNotWritable, match=r"cache folder .*home-is-a-file.*HOME must be writable.*MMCOURSE_"):
        cache_dir()
