"""Safe files: atomic writes (temp file + rename), the cache directory, and cached artefacts with a lock.

Used by checkpoints (engine), downloads (data) and artefacts shared between notebooks (a pretrained encoder
made in chapter 12, generated data), since tests run notebooks in parallel.

What a save promises: readers see the old file or the whole new one, never a part; the new file gets the
permissions the user's umask gives (not 0600), so a cache can be shared; a save killed midway leaves a temp
file ``.NAME.HOST.PID.RANDOM.tmp`` that the next save or load of ``NAME`` removes once its writer is dead (or
it has not changed for ``STALE_AFTER`` seconds, for a writer on another machine); a full disk or a folder that
cannot be written is reported in words, with the path (and the free space).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch
from filelock import FileLock

T = TypeVar("T")
STALE_AFTER = 600.0  # seconds without a write after which a temp file whose writer cannot be asked is stale


class FolderNotWritable(PermissionError):
    """A folder mmcourse must write to (the cache, the data folder, a checkpoint's folder) is not writable."""


class DiskFullError(OSError):
    """A save failed because the disk (or the user's quota) is full; the message names the path and free space."""


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def free_space(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent), or None if unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def not_writable(folder: Path, err: OSError, what: str, fix: str) -> FolderNotWritable:
    """The error to raise when ``folder`` cannot be written: says read-only vs no permission, and the fix."""
    if err.errno == errno.EROFS:
        kind = "is read-only (a read-only file system)"
    elif err.errno in (errno.EACCES, errno.EPERM):
        kind = "is not writable (permission denied)"
    else:
        kind = f"cannot be created or written ({type(err).__name__}: {err.strerror or err})"
    e = FolderNotWritable(f"{what} {folder} {kind}. {fix}")
    e.errno = err.errno  # (no filename: str(e) stays the message)
    return e


def cache_dir(sub: str = "") -> Path:
    """``$MMCOURSE_CACHE`` or ``~/.cache/mmcourse`` (created), optionally a sub-folder of it.

    Raises:
        FolderNotWritable: the folder cannot be created (e.g. HOME is read-only) — with the variable to set.
    """
    env = os.environ.get("MMCOURSE_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "mmcourse"
    path = root / sub if sub else root
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        where = "MMCOURSE_CACHE" if env else "HOME"
        raise not_writable(path, e, "the mmcourse cache folder",
                           f"{where} must be writable; set MMCOURSE_CACHE to a folder you can write "
                           "(e.g. export MMCOURSE_CACHE=/tmp/mmcourse-cache)") from e
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: assume it lives
    return True


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """``path``'s temp name beside it: ``.NAME.HOST.PID.RANDOM<suffix>`` (who writes it is in the name)."""
    host = socket.gethostname().replace(".", "-") or "host"
    return path.with_name(f".{path.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def sweep_stale(path: str | os.PathLike, suffix: str = ".tmp", *, now: float | None = None) -> list[Path]:
    """Remove temp files of ``path`` left by interrupted saves; return those removed.

    A temp file is stale when its writer (host and PID in its name) is a dead process on this machine, or when
    it has not been written for ``STALE_AFTER`` seconds (a writer elsewhere, an old-style name, or our own PID).
    A live writer's file is never touched. Errors (e.g. a read-only folder) are ignored: sweeping is tidying.
    """
    path = Path(path)
    now = time.time() if now is None else now
    host = socket.gethostname().replace(".", "-") or "host"
    removed = []
    try:
        candidates = list(path.parent.glob(f".{path.name}.*{suffix}"))
    except OSError:
        return removed
    for tmp in candidates:
        parts = tmp.name[len(path.name) + 2:-len(suffix)].split(".")
        try:
            age = now - tmp.stat().st_mtime
            dead = (len(parts) == 3 and parts[0] == host and parts[1].isdigit() and int(parts[1]) != os.getpid()
                    and not _pid_alive(int(parts[1])))
            if dead or age > STALE_AFTER:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def _disk_full(e: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error behind ``e`` (torch wraps it in a RuntimeError), or None."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e
        e = e.__cause__ or e.__context__
    return None


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only when the block finishes; on error the old file stays."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path)
        tmp = temp_path(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides the permissions
    except OSError as e:
        if _disk_full(e):
            raise DiskFullError(f"cannot save {path}: the disk is full ({_gib(free_space(path) or 0)} free)") from e
        if isinstance(e, PermissionError) or e.errno == errno.EROFS:
            raise not_writable(path.parent, e, "cannot save " + path.name + ": the folder",
                               "Save somewhere else (or fix the folder's permissions)") from e
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = _disk_full(e)
        if full is not None:
            free = free_space(path)
            raise DiskFullError(f"cannot save {path}: the disk is full ({os.strerror(full.errno)}; "
                                f"{_gib(free) if free is not None else 'unknown'} free on its file system). Free "
                                "some space or save elsewhere; the previous file, if any, is unchanged") from e
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    with _atomic_file(path) as f:
        f.write(data)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file in the same folder, then an atomic rename."""
    path = Path(path)
    with _atomic_file(path) as f:
        torch.save(obj, f)
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def cached(path: str | os.PathLike, build: Callable[[], T], *, load: Callable[[Path], T] | None = None,
           save: Callable[[T, Path], Any] | None = None, check: Callable[[T], Any] | None = None) -> T:
    """Return the artefact at ``path``, building and saving it first if missing; safe across processes.

    By default artefacts are torch objects (``torch.load(weights_only=True)`` / atomic ``torch.save``). A cached
    file that cannot be loaded, or that ``check`` rejects (by raising), is corrupt: a warning names it, and it
    is rebuilt and replaced. A file that cannot be *read* (permissions) raises instead.
    """
    path = Path(path)
    load = load or (lambda p: torch.load(p, map_location="cpu", weights_only=True))
    save = save or (lambda obj, p: atomic_torch_save(obj, p))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise not_writable(path.parent, e, "the cache folder", "Set MMCOURSE_CACHE to a writable folder") from e
    with FileLock(str(path) + ".lock"):
        sweep_stale(path)
        if path.exists():
            try:
                obj = load(path)
                if check is not None:
                    check(obj)
                return obj
            except PermissionError:
                raise
            except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
                warnings.warn(f"the cached file {path} is corrupt or stale ({_first_line(e)}); rebuilding it",
                              stacklevel=2)
        obj = build()
        save(obj, path)
        return obj
