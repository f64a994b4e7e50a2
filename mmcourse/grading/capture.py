"""Runs inside the notebook's kernel under ``mmcourse grade``: copy the learner's answers out, as bytes.

After a cell that calls ``check("NN.name", expr)`` has run, the grader sends this module's source to the
kernel (no import: a notebook that never imported torch does not pay for it), which evaluates ``expr`` again
and pickles the value *by value* with cloudpickle (a function or class defined in the notebook travels
with the helpers and globals it uses). The bytes go to a file the grader named; the grader never unpickles
them itself — only the sandbox does (:mod:`mmcourse.grading.sandbox`). Whatever the notebook's code does
here can change only the learner's own answer, never a test or a grade.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_BYTES = 256 * 2**20


def save_answers(getters: dict[str, Callable[[], Any]], folder: str) -> None:
    """Write ``<folder>/<check_id>.pkl`` (the pickled answer) or ``.err`` (why it could not be copied)."""
    import cloudpickle

    for check_id, get in getters.items():
        out = Path(folder) / f"{check_id}.pkl"
        try:
            blob = cloudpickle.dumps(get(), protocol=pickle.DEFAULT_PROTOCOL)
            if len(blob) > MAX_BYTES:
                raise ValueError(f"it refers to {len(blob) / 2**20:.0f} MB of data (at most {MAX_BYTES >> 20} MB)")
            out.write_bytes(blob)
        except Exception as e:  # noqa: BLE001 - reported as the task's result
            out.with_suffix(".err").write_text(f"{type(e).__name__}: {e}"[:1000], encoding="utf-8")
