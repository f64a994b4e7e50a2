"""Downloads and ``mmcourse data``: pinned checksums, no trust on first use, read-only and full folders said so.

Offline: "servers" are ``file://`` URLs of files the tests write; unwritable folders and full disks are
simulated with the errno the real fault gives (the tests may run as root).
"""

import argparse
import errno
import gzip
import hashlib
import io as pyio
import os
import re
import tarfile

import pytest

import mmcourse.data.download as dl
from mmcourse.data import avmnist, cli
from mmcourse.data.download import (
    CorruptFileError,
    DataFolderNotWritable,
    DatasetNotAvailable,
    DatasetSource,
    RemoteFile,
    fetch,
    status,
)
from mmcourse.io import DiskFullError


def _run(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    return args._run(args)


def _tar_gz(path, files=3):
    with tarfile.open(path, "w:gz") as tar:
        for i in range(files):
            data = b"RIFF" + bytes(40)
            info = tarfile.TarInfo(f"fsdd/recordings/{i}_theo_0.wav")
            info.size = len(data)
            tar.addfile(info, pyio.BytesIO(data))
    return path


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MMCOURSE_OFFLINE", "1")
    return tmp_path / "data"


def _fsdd_file(data_home):
    folder = data_home / "fsdd"
    folder.mkdir(parents=True)
    return folder / avmnist.FSDD.files[0].filename


def test_every_downloadable_file_but_fsdd_has_a_pinned_sha256():
    for name, sources in cli.SOURCES.items():
        for src in sources:
            for rf in src.files:
                if src.name == "fsdd":
                    assert rf.checksum == "" and rf.archive == "tar.gz"
                else:
                    assert rf.algorithm == "sha256" and re.fullmatch(r"[0-9a-f]{64}", rf.checksum), (name, rf)


def test_verify_fsdd_refuses_random_bytes(data_home, capsys):
    _fsdd_file(data_home).write_bytes(os.urandom(5000))
    assert _run(["verify", "fsdd"]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in out and "not a readable .tar.gz archive" in out and ": ok" not in out


def test_verify_fsdd_never_trusts_a_first_hash(data_home, capsys):
    path = _tar_gz(_fsdd_file(data_home))
    assert _run(["verify", "fsdd"]) == 1, "a file with no pinned checksum is never verified"
    out = capsys.readouterr().out
    assert "unverified: no checksum is published" in out and "readable tar.gz archive of 3 files" in out
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no hash was recorded as the truth"
    assert _run(["verify", "fsdd"]) == 1, "still unverified the second time"


def test_truncated_fsdd_archive_is_corrupt(data_home):
    good = _tar_gz(data_home.parent / "good.tar.gz", files=50)
    path = _fsdd_file(data_home)
    path.write_bytes(good.read_bytes()[:-20])
    assert status(avmnist.FSDD, path.parent)[path.name].startswith("corrupt")


def test_data_list_shows_an_unverified_fsdd(data_home, capsys):
    _tar_gz(_fsdd_file(data_home))
    assert _run(["list"]) == 0
    assert re.search(r"fsdd\s+cached, unverified", capsys.readouterr().out)


def test_verify_mnist_with_wrong_bytes_is_corrupt(data_home, capsys):
    folder = data_home / "mnist"
    folder.mkdir(parents=True)
    for rf in avmnist.MNIST.files:
        (folder / rf.filename).write_bytes(gzip.compress(b"not mnist"))
    assert _run(["verify", "mnist"]) == 1
    out = capsys.readouterr().out
    assert "corrupt or incomplete: its sha256 is" in out and "expected 440fcabf" in out


def test_read_only_data_folder_is_reported_as_read_only_not_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = tmp_path / "server.bin"
    src.write_bytes(b"payload")
    source = DatasetSource("demo", (RemoteFile(src.as_uri(), "server.bin", "0" * 64),), "d", "-", "-")

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(dl.os, "open", refuse)
    with pytest.raises(DataFolderNotWritable, match=r"data folder .*cache is read-only") as err:
        fetch(source, tmp_path / "cache")
    assert "offline" not in str(err.value)
    assert isinstance(err.value, DatasetNotAvailable)


def test_download_cli_into_a_read_only_folder_exits_1_saying_read_only(data_home, monkeypatch, capsys):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)

    def refuse(*a, **k):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(dl.os, "open", refuse)
    assert _run(["download", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "is not writable (permission denied)" in err and "offline" not in err


def test_full_disk_during_a_download_is_a_disk_full_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = tmp_path / "server.bin"
    src.write_bytes(b"x" * 5000)
    source = DatasetSource("demo", (RemoteFile(src.as_uri(), "server.bin"),), "d", "-", "-")
    real = os.fdopen

    class Full(pyio.RawIOBase):
        def __init__(self, fd):
            self.f = real(fd, "wb")

        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()
            super().close()

    monkeypatch.setattr(dl.os, "fdopen", lambda fd, mode="wb": Full(fd))
    with pytest.raises(DiskFullError, match=r"cannot download .*server.bin to .*: the disk is full"):
        fetch(source, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir()), "the partial download was removed"


def test_next_download_sweeps_a_dead_downloads_part_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = tmp_path / "server.bin"
    src.write_bytes(b"payload")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".server.bin.k2j3h4.part"  # a killed download of the old naming
    stale.write_bytes(b"pay")
    os.utime(stale, (0, 0))
    source = DatasetSource("demo", (RemoteFile(src.as_uri(), "server.bin", hashlib.sha256(b"payload").hexdigest()),),
                           "d", "-", "-")
    fetch(source, cache)
    assert sorted(p.name for p in cache.iterdir()) == ["server.bin"]


def test_downloaded_file_follows_the_umask(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = tmp_path / "server.bin"
    src.write_bytes(b"payload")
    source = DatasetSource("demo", (RemoteFile(src.as_uri(), "server.bin", hashlib.sha256(b"payload").hexdigest()),),
                           "d", "-", "-")
    old = os.umask(0o022)
    try:
        path = fetch(source, tmp_path / "cache")["server.bin"]
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_data_list_with_an_unwritable_home_prints_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    for var in ("MMCOURSE_CACHE", "MMCOURSE_DATA"):
        monkeypatch.delenv(var, raising=False)
    assert _run(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the mmcourse cache folder") and "MMCOURSE_CACHE" in err
    assert "Traceback" not in err


def test_fetch_of_an_unpinned_file_warns_that_it_is_unverified(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = _tar_gz(tmp_path / "fsdd.tar.gz")
    source = DatasetSource("fsdd", (RemoteFile(src.as_uri(), src.name, archive="tar.gz"),), "d", "-", "-")
    with pytest.warns(UserWarning, match="fsdd: .* is unverified"):
        fetch(source, tmp_path / "cache")


def test_fetch_of_an_unpinned_archive_that_is_garbage_is_corrupt(tmp_path, monkeypatch):
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    src = tmp_path / "fsdd.tar.gz"
    src.write_bytes(os.urandom(5000))
    source = DatasetSource("fsdd", (RemoteFile(src.as_uri(), src.name, archive="tar.gz"),), "d", "-", "-")
    with pytest.raises(CorruptFileError, match=r"downloaded file:.*fsdd.tar.gz but it is not a readable .tar.gz"):
        fetch(source, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir()), "nothing that is not an archive was kept"
