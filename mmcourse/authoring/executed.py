"""Hand the book build the notebooks the test suite has just executed, so `make test` runs each chapter once.

`make test` runs every book chapter under nbval (the test), then builds the book, which used to execute every
chapter a second time — a third of the whole run on a 2-core machine. With ``MMCOURSE_BOOK_CACHE`` set to the
book's jupyter-cache folder, the test suite's ``conftest.py`` puts each nbval cell's outputs back into its
notebook and, when *every* code cell of a book chapter passed, stores that executed notebook in the cache.
The book build (``mmcourse.authoring.book_build.pre_execute``) then finds the chapter cached for its current
code and only renders it; a chapter with a failed or skipped cell is not stored and executes in the build as
before, and so is a chapter that displays widgets: their state lives in the notebook's metadata, which only a
real execution (nbclient) records, and without it the HTML shows no widget. ``make book`` on its own is
unchanged.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_ENV = "MMCOURSE_BOOK_CACHE"
_LOCK = Path(tempfile.gettempdir()) / "mmcourse-book-cache.lock"


def cache_folder() -> Path | None:
    """The jupyter-cache folder to store executed book chapters in, or ``None`` when not asked to."""
    folder = os.environ.get(CACHE_ENV)
    return Path(folder) if folder else None


def is_book_chapter(path: Path) -> bool:
    """Only the book's own chapters (``book/*.ipynb``) are rendered from the cache."""
    return path.suffix == ".ipynb" and path.parent.name == "book"


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def shows_widget(outputs: list) -> bool:
    """Whether a cell's outputs display an ipywidget (whose state nbval does not record)."""
    return any(WIDGET_MIME in out.get("data", {}) for out in outputs)


def store_executed(nb: Any, path: Path, folder: Path, seconds: float) -> None:
    """Store the executed notebook ``nb`` of ``path`` in the jupyter-cache at ``folder``.

    The cache is an SQLite database shared by the test workers: writes take a machine-wide ``flock``.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    folder.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            get_cache(str(folder)).cache_notebook_bundle(
                CacheBundleIn(nb, str(path.resolve()), data={"execution_seconds": seconds, "executed_by": "nbval"}),
                check_validity=False, overwrite=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
