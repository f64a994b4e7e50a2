"""Pytest hooks for the whole course: record how long each notebook takes under nbval, and start notebook
kernels one at a time across processes.

Each notebook cell is one test item; the controller process (not the xdist workers, to count once) appends
``{"notebook": path, "seconds": duration}`` per phase to ``$MMCOURSE_RECORDS/durations-<pid>.jsonl``.
``tests/after/test_budgets.py`` sums them per notebook and fails notebooks over their time budget.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

# jupyter_client picks a kernel's five TCP ports by binding to port 0 and closing, and the kernel binds them a
# moment later: two pytest-xdist workers starting kernels at once can pick the same port, and a kernel then
# dies ("Kernel died before replying to kernel_info") or a client talks to the wrong kernel and waits
# (jupyter/jupyter_client#487). Holding a machine-wide lock from port choice until the kernel answers closes
# that window; ``tests/test_colab.py`` takes the same lock.
KERNEL_START_LOCK = Path(tempfile.gettempdir()) / "mmcourse-kernel-start.lock"


@contextmanager
def kernel_start_lock():
    """Hold the machine-wide kernel-start lock (an ``flock``; released when the process dies)."""
    with open(KERNEL_START_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
