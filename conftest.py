"""Pytest hooks for the whole course: record how long each notebook takes under nbval, and start notebook
kernels one at a time across processes.

Each notebook cell is one test item; the controller process (not the xdist workers, to count once) appends
``{"notebook": path, "seconds": duration}`` per phase to ``$MMCOURSE_RECORDS/durations-<pid>.jsonl``.
``tests/after/test_budgets.py`` sums them per notebook and fails notebooks over their time budget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mmcourse.authoring.kernels import kernel_start_lock  # one kernel start at a time


def pytest_configure(config):
    try:
        import nbval.kernel
    except ImportError:
        return
    start = nbval.kernel.start_new_kernel
    if getattr(start, "_mmcourse_locked", False):
        return

    def locked_start(*args, **kwargs):  # returns once the kernel has answered: its ports are bound
        with kernel_start_lock():
            return start(*args, **kwargs)

    locked_start._mmcourse_locked = True
    nbval.kernel.start_new_kernel = locked_start


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
