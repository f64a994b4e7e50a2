"""A pytest plugin for the CUDA-tests step of ``make gpu-check``: one JSON line per test, written as soon as the
test ends, to ``$MMCOURSE_GPU_CHECK_TESTLOG``, so a pytest stopped at its time budget keeps every finished
result (JUnit XML is written only at the end). Loaded with ``pytest -p mmcourse.gpu_check.pytest_log``.
"""

from __future__ import annotations

import json
import os
from typing import Any


def _message(report: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    return str(crash.message) if crash is not None else (str(report.longrepr)[-500:] if report.longrepr else "")


def pytest_runtest_logreport(report: Any) -> None:
    path = os.environ.get("MMCOURSE_GPU_CHECK_TESTLOG")
    if not path or not (report.when == "call" or report.outcome != "passed"):
        return
    outcome = {"failed": "failed" if report.when == "call" else "error"}.get(report.outcome, report.outcome)
    line = {"name": report.nodeid.split("::")[-1], "outcome": outcome, "seconds": report.duration,
            "when": report.when, "message": _message(report) if outcome != "passed" else ""}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
