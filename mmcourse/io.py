"""Safe files: atomic writes (temp file + rename), the cache directory, and cached artefacts with a lock.

Used by checkpoints (engine), downloads (data) and artefacts shared between notebooks (a pretrained encoder
made in chapter 11, generated data), since tests run notebooks in parallel.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch
from filelock import FileLock

T = TypeVar("T")


def cache_dir(sub: str = "") -> Path:
    """``$MMCOURSE_CACHE`` or ``~/.cache/mmcourse`` (created), optionally a sub-folder of it."""
    root = Path(os.environ.get("MMCOURSE_CACHE") or Path.home() / ".cache" / "mmcourse")
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only when the block finishes; on error the old file stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def cached(path: str | os.PathLike, build: Callable[[], T], *, load: Callable[[Path], T] | None = None,
           save: Callable[[T, Path], Any] | None = None) -> T:
    """Return the artefact at ``path``, building and saving it first if missing; safe across processes.

    By default artefacts are torch objects (``torch.load(weights_only=True)`` / atomic ``torch.save``).
    """
    path = Path(path)
    load = load or (lambda p: torch.load(p, map_location="cpu", weights_only=True))
    save = save or (lambda obj, p: atomic_torch_save(obj, p))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return load(path)
        obj = build()
        save(obj, path)
        return obj
