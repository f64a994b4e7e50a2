"""Pytest hooks for the whole course: record how long each notebook takes under nbval.

Each notebook cell is one test item; the controller process (not the xdist workers, to count once) appends
``{"notebook": path, "seconds": duration}`` per phase to ``$MMCOURSE_RECORDS/durations-<pid>.jsonl``.
``tests/after/test_budgets.py`` sums them per notebook and fails notebooks over their time budget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


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
