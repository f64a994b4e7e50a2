"""Hand the book build the notebooks the test suite has just executed, so `make test` runs each chapter once.

`make test` runs every book chapter under nbval (the test), then builds the book, which used to execute every
chapter a second time — a third of the whole run on a 2-core machine. With ``MMCOURSE_BOOK_CACHE`` set to the
book's jupyter-cache folder, the test suite's ``conftest.py`` puts each nbval cell's outputs back into its
notebook and, when *every* code cell of a book chapter passed, stores that executed notebook in the cache.
The book build (``mmcourse.authoring.book_build.pre_execute``) then finds the chapter cached for its current
code and only renders it; a chapter with a failed or skipped cell is not stored and executes in the build as
before. A chapter that displays widgets is stored with their state, which the HTML needs to draw them: nbval
ignores widget messages, so :class:`WidgetRecorder` reads the kernel's messages as they pass and does what
nbclient does as a frontend — keeps each widget's state and routes what a cell prints inside an ``Output``
widget (``interact``'s figures) into that widget. ``make book`` on its own is unchanged.
"""

from __future__ import annotations

import base64
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


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
_CAPTURED = ("stream", "display_data", "execute_result")  # what an Output widget takes; errors stay nbval's


class WidgetRecorder:
    """The frontend part of nbclient's execution, for nbval: widget state from the kernel's iopub messages.

    :meth:`observe` sees every message before nbval does. ``comm_open`` / ``comm_msg`` update a widget's state.
    While an ``Output`` widget captures (its ``msg_id`` is the running cell's), the cell's outputs go into the
    widget's ``outputs`` instead of the cell, as in JupyterLab and nbclient; nbval is handed them renamed
    ``comm_captured``, which it skips. An error is never captured: nbval still fails the cell on it.
    """

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.buffers: dict[str, dict[tuple, dict[str, str]]] = {}
        self.hooks: dict[str, list[str]] = {}  # cell msg_id -> Output widgets capturing it (last one wins)
        self.clear_next: set[str] = set()

    def observe(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Record what ``msg`` does to the widgets; return it, or a renamed copy if an Output widget took it."""
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("comm_open", "comm_msg"):
            self._update(msg)
            return msg
        stack = self.hooks.get(msg.get("parent_header", {}).get("msg_id", ""))
        if not stack or kind not in (*_CAPTURED, "clear_output"):
            return msg
        comm_id = stack[-1]
        outputs = self.state[comm_id].setdefault("outputs", [])
        if kind == "clear_output":
            if content.get("wait"):
                self.clear_next.add(comm_id)
            else:
                outputs.clear()
        else:
            import nbformat

            if comm_id in self.clear_next:
                self.clear_next.discard(comm_id)
                outputs.clear()
            out = nbformat.v4.output_from_msg(msg)
            last = outputs[-1] if outputs else None
            if last and last["output_type"] == out["output_type"] == "stream" and last["name"] == out["name"]:
                last["text"] += out["text"]
            else:
                outputs.append(out)
        return {**msg, "msg_type": "comm_captured"}

    def _update(self, msg: dict[str, Any]) -> None:
        content = msg["content"]
        data, comm_id = content.get("data") or {}, content["comm_id"]
        if "state" not in data:  # a custom message, not a state change
            return
        state = self.state.setdefault(comm_id, {})
        state.update(data["state"])
        for path, buf in zip(data.get("buffer_paths") or [], msg.get("buffers") or []):
            self.buffers.setdefault(comm_id, {})[tuple(path)] = {
                "data": base64.b64encode(bytes(buf)).decode("ascii"), "encoding": "base64", "path": path}
        if state.get("_model_name") == "OutputModel" and "msg_id" in data["state"]:
            for stack in self.hooks.values():  # an Output widget captures one cell at a time
                if comm_id in stack:
                    stack.remove(comm_id)
            if data["state"]["msg_id"]:
                self.hooks.setdefault(data["state"]["msg_id"], []).append(comm_id)

    def metadata(self) -> dict[str, Any] | None:
        """The notebook's ``metadata.widgets`` as nbclient writes it, or ``None`` when no widget was made."""
        if not self.state:
            return None
        models = {}
        for comm_id, state in self.state.items():
            models[comm_id] = {"model_name": state.get("_model_name"), "model_module": state.get("_model_module"),
                               "model_module_version": state.get("_model_module_version"), "state": state}
            if comm_id in self.buffers:
                models[comm_id]["buffers"] = list(self.buffers[comm_id].values())
        return {WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": models}}


def store_executed(nb: Any, path: Path, folder: Path, seconds: float,
                   widgets: WidgetRecorder | None = None) -> None:
    """Store the executed notebook ``nb`` of ``path`` in the jupyter-cache at ``folder``, with the state of the
    widgets ``widgets`` recorded (if any).

    The cache is an SQLite database shared by the test workers: writes take a machine-wide ``flock``.
    """
    state = widgets.metadata() if widgets is not None else None
    if state is not None:
        nb.metadata["widgets"] = state
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
