"""Graded checks: the registry of hidden tests, how a test's outcome becomes points, and ``check(id, answer)``.

Each chapter's checks live in ``mmcourse/grading/chNN.py`` and register themselves with ``@register``; they
are imported the first time a check of that chapter is asked for. A test receives an
:class:`~mmcourse.grading.answers.Answer` (call it like the learner's function, or ``.probe(...)`` it) and
raises ``AssertionError`` with a message a learner can act on when the answer is wrong.

Two places run the tests:

- ``check("03.conv2d", conv2d)`` in a notebook runs them right there, in the learner's kernel, and prints
  the points and a hint: feedback while working, which the learner's own code could fake — it is not a grade.
- ``mmcourse grade`` (:mod:`mmcourse.grading.grader`) runs them in its own process, with the learner's code
  in a sandbox: the only points that count. Under the grader (``MMCOURSE_GRADING=1``) ``check`` in the
  notebook runs nothing and says so.

Both map the outcome the same way (:func:`judge`): a wrong answer, an exception, a forbidden call or a hang
all become a result with 0 points and a hint; a check never crashes the notebook.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmcourse.grading.answers import (
    Answer,
    AnswerCrashed,
    AnswerTimeout,
    ForbiddenCall,
    LocalAnswer,
    WrongType,
    from_answer,
)

TestFn = Callable[[Any], None]
GRADING_ENV = "MMCOURSE_GRADING"


@dataclass(frozen=True)
class CheckSpec:
    """A hidden test: ``test(answer)`` raises ``AssertionError`` with a helpful message when wrong.

    ``forbid`` names torch functions the learner's code must not call (``"conv2d"`` matches ``F.conv2d``,
    ``torch.conv2d``, ``nn.Conv2d`` and ``torch.ops.aten.conv2d``); ``forbid_note`` says what to do instead.
    """

    check_id: str
    test: TestFn
    points: int
    hint: str
    timeout: float
    forbid: tuple[str, ...] = ()
    forbid_note: str = ""
    kind: str = "build"


KINDS = ("build", "find-the-bug", "experiment")
"""What a task asks: ``build`` a piece the chapter did not show, ``find-the-bug`` in given code, or run an
``experiment`` and interpret it (an answer the grader can check: a number in a range, a choice, a prediction)."""


@dataclass
class CheckResult:
    """What a check reports: points earned out of ``max_points``, and a message for the learner."""

    check_id: str
    points: int
    max_points: int
    status: str  # "passed" | "failed" | "not implemented" | "error" | "timeout" | "deferred"
    message: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_REGISTRY: dict[str, CheckSpec] = {}


def register(check_id: str, *, points: int = 1, hint: str = "", timeout: float = 30.0,
             forbid: Iterable[str] = (), forbid_note: str = "", kind: str = "build") -> Callable[[TestFn], TestFn]:
    """Decorator that registers ``test`` under ``check_id`` (``"NN.name"``, e.g. ``"03.conv2d"``).

    ``kind`` is one of :data:`KINDS`; every chapter has a ``find-the-bug`` task and, from chapter 05 on, an
    ``experiment`` (tests/test_grading.py counts them).
    """
    _validate_id(check_id)
    if points < 1 or timeout <= 0:
        raise ValueError(f"{check_id}: points must be >= 1 and timeout > 0, got {points} and {timeout}")
    if kind not in KINDS:
        raise ValueError(f"{check_id}: kind must be one of {KINDS}, got {kind!r}")

    def deco(test: TestFn) -> TestFn:
        if check_id in _REGISTRY and _REGISTRY[check_id].test.__qualname__ != test.__qualname__:
            raise ValueError(f"check id {check_id!r} is registered twice")
        _REGISTRY[check_id] = CheckSpec(check_id, test, points, hint, timeout, tuple(forbid), forbid_note, kind)
        return test

    return deco


def _validate_id(check_id: str) -> None:
    chapter, _, name = check_id.partition(".")
    if not (len(chapter) == 2 and chapter.isdigit() and name):
        raise ValueError(f"check id {check_id!r} must look like 'NN.name', e.g. '03.conv2d'")


def _import_chapter(chapter: str) -> None:
    module = f"mmcourse.grading.ch{chapter}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise


def get_check(check_id: str) -> CheckSpec:
    """The registered check, importing its chapter's module (``mmcourse.grading.chNN``) on first use."""
    _validate_id(check_id)
    if check_id not in _REGISTRY:
        _import_chapter(check_id[:2])
    if check_id not in _REGISTRY:
        chapter = sorted(k for k in _REGISTRY if k.startswith(check_id[:3]))
        raise KeyError(f"no check named {check_id!r}; checks of chapter {check_id[:2]}: {chapter or 'none'}")
    return _REGISTRY[check_id]


def checks_of_chapter(chapter: str) -> list[CheckSpec]:
    """All checks of chapter ``"NN"``, in id order."""
    _import_chapter(chapter)
    return [v for k, v in sorted(_REGISTRY.items()) if k.startswith(chapter + ".")]


def chapters() -> list[str]:
    """The chapters with a grading module (``mmcourse/grading/chNN.py``), e.g. ``["00", "01", ...]``."""
    import mmcourse.grading as pkg

    return sorted(m.name[2:] for m in pkgutil.iter_modules(pkg.__path__)
                  if m.name.startswith("ch") and m.name[2:].isdigit() and len(m.name) == 4)


def judge(spec: CheckSpec, answer: Answer) -> CheckResult:
    """Run ``spec``'s test on ``answer`` and turn the outcome into points and a message (never raises)."""
    start = time.perf_counter()
    hint = f" Hint: {spec.hint}" if spec.hint else ""

    def result(status: str, message: str) -> CheckResult:
        points = spec.points if status == "passed" else 0
        return CheckResult(spec.check_id, points, spec.points, status, message, time.perf_counter() - start)

    try:
        spec.test(answer)
    except AnswerTimeout:
        return result("timeout", f"did not finish within {spec.timeout:.0f} s (an endless loop, or far too "
                                 f"slow?).{hint}")
    except AnswerCrashed:
        return result("error", "your code ended the process that ran it (os._exit, exit(), a crash or out of "
                               f"memory).{hint}")
    except (ForbiddenCall, WrongType) as e:
        return result("failed", f"{e}.{hint}" if not str(e).endswith(".") else f"{e}{hint}")
    except Exception as e:  # noqa: BLE001 - every failure becomes a message for the learner
        if from_answer(e):
            if isinstance(e, NotImplementedError):
                return result("not implemented", "not implemented yet: replace `raise NotImplementedError()` "
                                                 f"with your code.{hint}")
            return result("error", f"your code raised {type(e).__name__}: {e}.{hint}")
        if isinstance(e, AssertionError):
            return result("failed", f"{e}{hint}")
        return result("error", f"the hidden test could not use what your code returned ({type(e).__name__}: "
                               f"{e}); check the type and shape the task asks for.{hint}")
    return result("passed", "all hidden tests pass.")


def run_check(check_id: str, answer: Any) -> CheckResult:
    """Run the hidden test of ``check_id`` on ``answer`` in this process (feedback); never raises for an answer.

    The test runs in a daemon thread: after ``timeout`` seconds it is reported as a timeout (the thread is left
    behind; restart the kernel if it keeps spinning).
    """
    spec = get_check(check_id)
    box: dict[str, CheckResult] = {}
    start = time.perf_counter()
    thread = threading.Thread(target=lambda: box.setdefault(
        "r", judge(spec, LocalAnswer(answer, spec.forbid, spec.forbid_note))), daemon=True, name="mmcourse-check")
    thread.start()
    thread.join(spec.timeout)
    if "r" in box:
        return box["r"]
    hint = f" Hint: {spec.hint}" if spec.hint else ""
    return CheckResult(check_id, 0, spec.points, "timeout", f"did not finish within {spec.timeout:.0f} s (an "
                       f"endless loop, or far too slow?).{hint}", time.perf_counter() - start)


def record_for_tests(result: CheckResult) -> None:
    """Append ``result`` to ``$MMCOURSE_RECORDS/checks-<pid>.jsonl`` when that variable is set.

    A test-only artefact: ``make test`` reads it to see that solutions pass their checks and blank exercises
    fail them during the nbval run. Anything in the notebook can write there; the grader never reads it.
    """
    folder = os.environ.get("MMCOURSE_RECORDS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    line = json.dumps({**asdict(result), "cwd": os.getcwd(), "pid": os.getpid()})
    with open(Path(folder) / f"checks-{os.getpid()}.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def check(check_id: str, answer: Any) -> CheckResult:
    """Run the hidden tests of ``check_id`` on ``answer`` (your function or class); print points and a hint.

    Example:
        >>> check("03.conv2d", conv2d)   # doctest: +SKIP
        ✔ [03.conv2d] 2/2 points — all hidden tests pass.
    """
    if os.environ.get(GRADING_ENV) == "1":
        spec = get_check(check_id)
        print(f"… [{check_id}] graded by `mmcourse grade`, outside this notebook")
        return CheckResult(check_id, 0, spec.points, "deferred", "graded by mmcourse grade", 0.0)
    result = run_check(check_id, answer)
    mark = "✔" if result.passed else "✘"
    print(f"{mark} [{check_id}] {result.points}/{result.max_points} points — {result.message}")
    record_for_tests(result)
    return result
