"""Downloads of the real datasets: a cache folder, checksums, atomic writes, clear errors offline (chapter 00).

Files live in ``$MMCOURSE_DATA`` (default ``<mmcourse cache>/data``), one folder per dataset. A download is
streamed into a temporary file beside its target, hashed on the way, and renamed into place only when the
checksum matches, so an interrupted download never leaves a file that looks valid. Files with a published
checksum are verified against it (sha256, or md5 where that is all the source publishes); a file without
one gets its sha256 recorded at the first download (``<file>.sha256``) and is verified against that later.
``MMCOURSE_OFFLINE=1`` forbids network access: a missing file then raises :class:`DatasetNotAvailable`
naming the URL, the expected path and how to place the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mmcourse.io import atomic_write_bytes, cache_dir


class DatasetNotAvailable(RuntimeError):
    """A dataset file is missing and cannot be downloaded (offline, or the server failed)."""


class CorruptFileError(RuntimeError):
    """A cached file does not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from and how to check it (``checksum`` empty: none published)."""

    url: str
    filename: str
    checksum: str = ""
    algorithm: str = "sha256"  # "sha256" or "md5"


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset: its files, what it is, its licence and where it comes from."""

    name: str
    files: tuple[RemoteFile, ...]
    description: str
    license: str
    homepage: str


def data_root() -> Path:
    """``$MMCOURSE_DATA`` if set, else ``<mmcourse cache dir>/data`` (created)."""
    env = os.environ.get("MMCOURSE_DATA")
    root = Path(env).expanduser() if env else cache_dir("data")
    root.mkdir(parents=True, exist_ok=True)
    return root


def file_hash(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    if algorithm not in ("sha256", "md5"):
        raise ValueError(f"checksum algorithm {algorithm!r} is not 'sha256' or 'md5'")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("MMCOURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _by_hand(source: DatasetSource, rf: RemoteFile, path: Path) -> str:
    check = f" ({rf.algorithm} {rf.checksum})" if rf.checksum else ""
    return (f"download {rf.url} yourself (e.g. in a browser) and save it as {path}{check}; "
            f"then run `mmcourse data verify {source.name}`. Set MMCOURSE_DATA to keep data elsewhere.")


def verify_file(source: DatasetSource, rf: RemoteFile, path: Path) -> str:
    """Check a cached file; return "ok", "ok (recorded sha256)" or raise :class:`CorruptFileError`."""
    if rf.checksum:
        got = file_hash(path, rf.algorithm)
        if got != rf.checksum:
            raise CorruptFileError(f"{path} is corrupt or incomplete: its {rf.algorithm} is {got}, expected "
                                   f"{rf.checksum}. Delete it and run `mmcourse data download {source.name}`, "
                                   f"or {_by_hand(source, rf, path)}")
        return "ok"
    record = path.with_name(path.name + ".sha256")
    got = file_hash(path)
    if not record.exists():
        atomic_write_bytes(record, got.encode())
        return "ok (sha256 recorded now; no published checksum)"
    want = record.read_text().strip()
    if got != want:
        raise CorruptFileError(f"{path} changed since it was downloaded: sha256 {got}, recorded {want}. "
                               f"Delete it and its .sha256 and run `mmcourse data download {source.name}`")
    return "ok (matches the sha256 recorded at download)"


def _download(rf: RemoteFile, path: Path, timeout: float) -> None:
    """Stream ``rf.url`` into a temp file beside ``path``; rename into place only if the checksum matches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        h = hashlib.new(rf.algorithm if rf.checksum else "sha256")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(rf.url, timeout=timeout) as resp:  # noqa: S310
            while block := resp.read(1 << 20):
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if rf.checksum and h.hexdigest() != rf.checksum:
            raise CorruptFileError(f"downloaded {rf.url} but its {rf.algorithm} is {h.hexdigest()}, expected "
                                   f"{rf.checksum}; the server sent something else (nothing was kept)")
        os.replace(tmp, path)
        if not rf.checksum:
            atomic_write_bytes(path.with_name(path.name + ".sha256"), h.hexdigest().encode())
    finally:
        Path(tmp).unlink(missing_ok=True)


def fetch(source: DatasetSource, root: str | os.PathLike | None = None, *, download: bool = True,
          timeout: float = 60.0) -> dict[str, Path]:
    """Paths of ``source``'s files, verified; downloads missing ones unless offline or ``download=False``.

    Raises:
        DatasetNotAvailable: a file is missing and cannot be fetched (message says how to place it by hand).
        CorruptFileError: a cached file fails its checksum.
    """
    folder = Path(root) if root is not None else data_root() / source.name
    paths = {}
    for rf in source.files:
        path = folder / rf.filename
        if not path.exists():
            if not download or _offline():
                why = "MMCOURSE_OFFLINE is set" if _offline() else "download=False"
                raise DatasetNotAvailable(f"{source.name}: {path} is missing and {why}. "
                                          + _by_hand(source, rf, path))
            try:
                _download(rf, path, timeout)
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                raise DatasetNotAvailable(f"{source.name}: could not download {rf.url} ({e}); are you "
                                          f"offline? To use it anyway, {_by_hand(source, rf, path)}") from e
        verify_file(source, rf, path)
        paths[rf.filename] = path
    return paths


def status(source: DatasetSource, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Per file: "missing", "ok ..." or "corrupt: ..." (never downloads, never raises for bad files)."""
    folder = Path(root) if root is not None else data_root() / source.name
    out = {}
    for rf in source.files:
        path = folder / rf.filename
        if not path.exists():
            out[rf.filename] = f"missing (expected at {path})"
            continue
        try:
            out[rf.filename] = verify_file(source, rf, path)
        except CorruptFileError as e:
            out[rf.filename] = f"corrupt: {e}"
    return out
