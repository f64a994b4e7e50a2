"""Downloads of the real datasets: a cache folder, pinned checksums, atomic writes, clear errors (chapter 00).

Files live in ``$MMCOURSE_DATA`` (default ``<mmcourse cache>/data``), one folder per dataset. A download is
streamed into a temporary file beside its target, hashed on the way, and renamed into place only when the
checksum matches, so an interrupted download never leaves a file that looks valid (its ``.part`` file is
swept by the next download once its writer is dead). Every file is checked against a checksum pinned in the
code (sha256, from the publisher or a registry that verifies it). A file with no pinned checksum — the FSDD
archive GitHub generates has none published — is never called verified: ``mmcourse data verify`` reports it
as *unverified* (exit status 1) after checking that it is a readable archive, and its first hash is not
trusted. ``MMCOURSE_OFFLINE=1`` forbids network access: a missing file then raises
:class:`DatasetNotAvailable` naming the URL, the expected path and how to place the file by hand; a data
folder that cannot be written raises :class:`DataFolderNotWritable` (read-only is said, not "offline").
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import tarfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from mmcourse.io import DiskFullError, FolderNotWritable, cache_dir, free_space, not_writable, sweep_stale, temp_path


class DatasetNotAvailable(RuntimeError):
    """A dataset file is missing and cannot be downloaded (offline, or the server failed)."""


class CorruptFileError(RuntimeError):
    """A cached file does not match its checksum (or, with none pinned, is not a readable archive)."""


class DataFolderNotWritable(DatasetNotAvailable):
    """A dataset file is missing and its folder cannot be written (read-only, or no permission)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from and how to check it.

    ``checksum`` is the pinned digest (``algorithm`` "sha256", or "md5"); empty when none is published, and the
    file can then never be verified. ``archive`` ("tar.gz") says what the file must at least be readable as.
    """

    url: str
    filename: str
    checksum: str = ""
    algorithm: str = "sha256"  # "sha256" or "md5"
    archive: str = ""


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
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise not_writable(root, e, "the data folder (MMCOURSE_DATA)",
                           "Set MMCOURSE_DATA to a folder you can write") from e
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


def inspect_archive(path: Path) -> str:
    """Check that ``path`` is a whole gzip-compressed tar archive (gzip CRC included); describe it.

    Raises:
        CorruptFileError: it is not, or it is truncated.
    """
    try:
        with gzip.open(path, "rb") as g:  # read to the end: the gzip trailer's CRC catches damage
            while g.read(1 << 20):
                pass
        with tarfile.open(path, "r:gz") as tar:
            files = sum(1 for m in tar.getmembers() if m.isfile())
    except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile) as e:
        raise CorruptFileError(f"{path} is not a readable .tar.gz archive ({type(e).__name__}: {e}); it is "
                               "corrupt, truncated or something else. Delete it and download it again") from e
    if not files:
        raise CorruptFileError(f"{path} is a .tar.gz archive with no files in it; delete it and download it again")
    return f"a readable tar.gz archive of {files} files"


def verify_file(source: DatasetSource, rf: RemoteFile, path: Path) -> str:
    """Check a cached file: "ok (...)" when it matches its pinned checksum, "unverified: ..." when none is pinned
    (after checking it is a readable archive), or raise :class:`CorruptFileError`. No hash is ever trusted
    because it was seen first."""
    if rf.checksum:
        got = file_hash(path, rf.algorithm)
        if got != rf.checksum:
            raise CorruptFileError(f"{path} is corrupt or incomplete: its {rf.algorithm} is {got}, expected "
                                   f"{rf.checksum}. Delete it and run `mmcourse data download {source.name}`, "
                                   f"or {_by_hand(source, rf, path)}")
        return f"ok ({rf.algorithm} matches the pinned checksum)"
    what = inspect_archive(path) if rf.archive == "tar.gz" else f"{path.stat().st_size:,} bytes"
    return (f"unverified: no checksum is published for {rf.url}, so mmcourse cannot vouch for this file (and "
            f"does not trust the first hash it sees); it is {what}, sha256 {file_hash(path)}. Compare that "
            "with a copy you trust")


def _download(rf: RemoteFile, path: Path, timeout: float) -> None:
    """Stream ``rf.url`` into a temp file beside ``path``; rename into place only if the checksum matches."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path, ".part")
        tmp = temp_path(path, ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides the permissions
    except OSError as e:
        if isinstance(e, FolderNotWritable):
            raise
        if isinstance(e, PermissionError) or e.errno == errno.EROFS:
            raise not_writable(path.parent, e, "the data folder", "Set MMCOURSE_DATA to a writable folder") from e
        raise
    try:
        h = hashlib.new(rf.algorithm if rf.checksum else "sha256")
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(rf.url, timeout=timeout) as resp:  # noqa: S310
                while block := resp.read(1 << 20):
                    h.update(block)
                    try:
                        out.write(block)
                    except OSError as e:
                        if e.errno in (errno.ENOSPC, errno.EDQUOT):
                            raise DiskFullError(f"cannot download {rf.url} to {path}: the disk is full "
                                                f"({(free_space(path) or 0) / 2**20:.1f} MiB free)") from e
                        raise
            out.flush()
            os.fsync(out.fileno())
        if rf.checksum and h.hexdigest() != rf.checksum:
            raise CorruptFileError(f"downloaded {rf.url} but its {rf.algorithm} is {h.hexdigest()}, expected "
                                   f"{rf.checksum}; the server sent something else (nothing was kept)")
        if not rf.checksum and rf.archive == "tar.gz":  # at least a whole archive, or nothing is kept
            try:
                inspect_archive(tmp)
            except CorruptFileError as e:
                raise CorruptFileError(f"downloaded {rf.url} but it is not a readable .tar.gz archive "
                                       f"({e.__cause__ or e}); nothing was kept") from e
        os.replace(tmp, path)
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
            except FolderNotWritable as e:
                raise DataFolderNotWritable(f"{source.name}: {path} is missing and cannot be downloaded: {e}. "
                                            f"Or {_by_hand(source, rf, path)}") from e
            except DiskFullError:
                raise
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                raise DatasetNotAvailable(f"{source.name}: could not download {rf.url} ({e}); are you "
                                          f"offline? To use it anyway, {_by_hand(source, rf, path)}") from e
        state = verify_file(source, rf, path)
        if state.startswith("unverified"):
            warnings.warn(f"{source.name}: {path} is {state}", stacklevel=2)
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
