"""Graded checks: a registry of hidden tests and ``check(check_id, fn)`` that learners call in exercises.

Each chapter's checks live in ``mmcourse/grading/chNN.py`` and register themselves with ``@register``; they
are imported lazily the first time a check of that chapter is asked for. A check never crashes the
notebook: a wrong answer, an exception or a hang (timeout) all become a result with 0 points and a hint.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TestFn = Callable[[Any], None]


@dataclass(frozen=True)
class CheckSpec:
    """A hidden test: ``test(answer)`` raises ``AssertionError`` with a helpful message when wrong."""

    check_id: str
    test: TestFn
    points: int
    hint: str
    timeout: float


@dataclass
class CheckResult:
    """What ``check`` reports: points earned out of ``max_points``, and a message for the learner."""

    check_id: str
    points: int
    max_points: int
    status: str  # "passed" | "failed" | "not implemented" | "error" | "timeout"
    message: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_REGISTRY: dict[str, CheckSpec] = {}


def register(check_id: str, *, points: int = 1, hint: str = "", timeout: float = 30.0
             ) -> Callable[[TestFn], TestFn]:
    """Decorator that registers ``test`` under ``check_id`` (``"NN.name"``, e.g. ``"03.conv2d"``)."""
    _validate_id(check_id)

    def deco(test: TestFn) -> TestFn:
        if check_id in _REGISTRY and _REGISTRY[check_id].test.__qualname__ != test.__qualname__:
            raise ValueError(f"check id {check_id!r} is registered twice")
        _REGISTRY[check_id] = CheckSpec(check_id, test, points, hint, timeout)
        return test

    return deco


def _validate_id(check_id: str) -> None:
    chapter, _, name = check_id.partition(".")
    if not (len(chapter) == 2 and chapter.isdigit() and name):
        raise ValueError(f"check id {check_id!r} must look like 'NN.name', e.g. '03.conv2d'")


def get_check(check_id: str) -> CheckSpec:
    """The registered check, importing its chapter's module (``mmcourse.grading.chNN``) on first use."""
    _validate_id(check_id)
    if check_id not in _REGISTRY:
        module = f"mmcourse.grading.ch{check_id[:2]}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    if check_id not in _REGISTRY:
        chapter = sorted(k for k in _REGISTRY if k.startswith(check_id[:3]))
        raise KeyError(f"no check named {check_id!r}; checks of chapter {check_id[:2]}: {chapter or 'none'}")
    return _REGISTRY[check_id]


def checks_of_chapter(chapter: str) -> list[CheckSpec]:
    """All checks of chapter ``"NN"``, in id order."""
    try:
        importlib.import_module(f"mmcourse.grading.ch{chapter}")
    except ModuleNotFoundError:
        pass
    return [v for k, v in sorted(_REGISTRY.items()) if k.startswith(chapter + ".")]


def _run_with_timeout(fn: Callable[[], None], timeout: float) -> tuple[str, BaseException | None]:
    """Run ``fn`` in a daemon thread; return ("done"|"raised"|"timeout", exception)."""
    box: dict[str, BaseException | None] = {"exc": None}

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported to the learner, never re-raised
            box["exc"] = e

    t = threading.Thread(target=target, daemon=True, name="mmcourse-check")
    t.start()
    t.join(timeout)
    if t.is_alive():
        return "timeout", None
    return ("raised", box["exc"]) if box["exc"] is not None else ("done", None)


def run_check(check_id: str, answer: Any) -> CheckResult:
    """Run the hidden test of ``check_id`` on ``answer`` and return a result; never raises for a bad answer."""
    spec = get_check(check_id)
    start = time.perf_counter()
    how, exc = _run_with_timeout(lambda: spec.test(answer), spec.timeout)
    secs = time.perf_counter() - start
    hint = f" Hint: {spec.hint}" if spec.hint else ""
    if how == "done":
        return CheckResult(check_id, spec.points, spec.points, "passed", "all hidden tests pass.", secs)
    if how == "timeout":
        msg = f"did not finish within {spec.timeout:.0f} s (an endless loop, or far too slow?).{hint}"
        return CheckResult(check_id, 0, spec.points, "timeout", msg, secs)
    if isinstance(exc, NotImplementedError):
        return CheckResult(check_id, 0, spec.points, "not implemented",
                           f"not implemented yet: replace `raise NotImplementedError()` with your code.{hint}",
                           secs)
    if isinstance(exc, AssertionError):
        return CheckResult(check_id, 0, spec.points, "failed", f"{exc}{hint}", secs)
    assert exc is not None
    where = traceback.format_exception(type(exc), exc, exc.__traceback__)[-1].strip()
    return CheckResult(check_id, 0, spec.points, "error", f"your code raised {where}.{hint}", secs)


def record(result: CheckResult) -> None:
    """Append the result to ``$MMCOURSE_RECORDS/grades-<pid>.jsonl`` when that variable is set (tests, grader)."""
    folder = os.environ.get("MMCOURSE_RECORDS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    line = json.dumps({**asdict(result), "cwd": os.getcwd(), "pid": os.getpid()})
    with open(Path(folder) / f"grades-{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def check(check_id: str, answer: Any) -> CheckResult:
    """Grade ``answer`` (usually your function or class) against hidden tests; print points and a hint.

    Example:
        >>> check("03.conv2d", conv2d)   # doctest: +SKIP
        [03.conv2d] 2/2 points — all hidden tests pass.
    """
    result = run_check(check_id, answer)
    mark = "✔" if result.passed else "✘"
    print(f"{mark} [{check_id}] {result.points}/{result.max_points} points — {result.message}")
    record(result)
    return result
