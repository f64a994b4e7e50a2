"""Pytest hooks for the whole course: record how long each notebook takes under nbval, start notebook
kernels one at a time across processes, and hand executed book chapters to the book build.

Each notebook cell is one test item; the controller process (not the xdist workers, to count once) appends
``{"notebook": path, "seconds": duration}`` per phase to ``$MMCOURSE_RECORDS/durations-<pid>.jsonl``.
``tests/after/test_budgets.py`` sums them per notebook and fails notebooks over their time budget.
With ``MMCOURSE_BOOK_CACHE`` set (``make test``), a book chapter whose code cells all passed is stored with
their outputs in the book's jupyter-cache, so the book build renders it without running it again
(``mmcourse.authoring.executed``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mmcourse.authoring import executed
from mmcourse.authoring.kernels import kernel_start_lock  # one kernel start at a time


def pytest_configure(config):
    try:
        import nbval.kernel
        import nbval.plugin
    except ImportError:
        return
    _record_widgets(nbval.plugin.IPyNbFile)
    start = nbval.kernel.start_new_kernel
    if getattr(start, "_mmcourse_locked", False):
        return

    def locked_start(*args, **kwargs):  # returns once the kernel has answered: its ports are bound
        with kernel_start_lock():
            return start(*args, **kwargs)

    locked_start._mmcourse_locked = True
    nbval.kernel.start_new_kernel = locked_start


def _record_widgets(nb_file_class) -> None:
    """With the book cache on, every kernel message a notebook's cells send passes a WidgetRecorder first."""
    get = nb_file_class.get_kernel_message
    if executed.cache_folder() is None or getattr(get, "_mmcourse_widgets", False):
        return

    def get_kernel_message(self, timeout=None, stream="iopub"):
        msg = get(self, timeout=timeout, stream=stream)
        if stream != "iopub":
            return msg
        return self.__dict__.setdefault("_mmcourse_widgets", executed.WidgetRecorder()).observe(msg)

    get_kernel_message._mmcourse_widgets = True
    nb_file_class.get_kernel_message = get_kernel_message


def pytest_runtest_logreport(report):
    folder = os.environ.get("MMCOURSE_RECORDS")
    if not folder or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    path = report.nodeid.split("::")[0]
    if not path.endswith(".ipynb"):
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"durations-{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"notebook": path, "phase": report.when, "seconds": report.duration,
                            "outcome": report.outcome}) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Put a passed nbval cell's outputs back into its notebook (the book build may render them); a failed or
    skipped cell keeps its chapter out of the cache."""
    outcome = yield
    if call.when != "call" or executed.cache_folder() is None or not hasattr(item, "test_outputs"):
        return
    nb_file = item.parent
    state = nb_file.__dict__.setdefault("_mmcourse_run", {"passed": 0, "failed": False, "start": time.time()})
    if outcome.get_result().passed and item.test_outputs is not None:
        state["passed"] += 1
        item.cell.outputs = list(item.test_outputs)
        item.cell.execution_count = state["passed"]
    else:
        state["failed"] = True


def pytest_runtest_teardown(item, nextitem):
    """After a book chapter's last cell: store it executed if every one of its code cells passed."""
    folder, nb_file = executed.cache_folder(), item.parent
    if folder is None or (nextitem is not None and nextitem.parent is nb_file):
        return
    state, nb = nb_file.__dict__.get("_mmcourse_run"), getattr(nb_file, "nb", None)
    path = Path(str(nb_file.fspath))
    if state is None or nb is None or state["failed"] or not executed.is_book_chapter(path):
        return
    if state["passed"] == sum(c.cell_type == "code" for c in nb.cells):
        executed.store_executed(nb, path, folder, time.time() - state["start"],
                                nb_file.__dict__.get("_mmcourse_widgets"))
