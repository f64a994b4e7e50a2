"""mmcourse.grading: checks never crash, answers come back as plain values, the sandbox survives its learner's
code, and the grader scores a solution and its blank exercise (the attacks are in test_grading_attacks.py)."""

import collections
import json
import os
import sys
import time
from pathlib import Path

import cloudpickle
import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.authoring.exercises import make_exercise
from mmcourse.grading.answers import (
    AnswerCrashed,
    AnswerRaised,
    AnswerTimeout,
    ForbiddenCall,
    LocalAnswer,
    WrongType,
    check_plain,
    from_answer,
    to_plain,
)
from mmcourse.grading.grader import grade_notebook
from mmcourse.grading.registry import check, get_check, register, run_check
from mmcourse.grading.runner import check_calls
from mmcourse.grading.sandbox import RemoteAnswer, Sandbox

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
sys.path.insert(0, str(Path(__file__).parent))
import ch99_checks  # noqa: E402  (registers chapter 99)
from test_authoring_exercises import solution_nb  # noqa: E402

ENV = {"PYTHONPATH": os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")])}
torch.testing.assert_close(torch.zeros(1), torch.zeros(1))  # its lazy imports would eat the 5 s of a fixture check


def test_right_wrong_raising_and_blank_answers(capsys):
    assert run_check("99.add", lambda a, b: a + b).points == 2
    wrong = run_check("99.add", lambda a, b: a - b)
    assert wrong.points == 0 and wrong.status == "failed" and "expected 3" in wrong.message
    assert "Hint: return a + b" in wrong.message
    raising = run_check("99.add", lambda a, b: 1 / 0)
    assert raising.status == "error" and "your code raised ZeroDivisionError" in raising.message
    own_assert = run_check("99.add", lambda a, b: exec("assert False, 'all hidden tests pass'"))
    assert own_assert.status == "error" and "your code raised AssertionError" in own_assert.message
    unusable = run_check("99.scale", lambda x: [1, 2])  # the test itself trips over the returned value
    assert unusable.status in ("failed", "error") and unusable.points == 0

    def blank(a, b):
        raise NotImplementedError()

    assert run_check("99.add", blank).status == "not implemented"
    res = check("99.square", lambda x: x * x)
    assert res.passed and "1/1 points" in capsys.readouterr().out


def test_hanging_answer_is_stopped_by_timeout():
    start = time.perf_counter()
    res = run_check("99.square", lambda x: time.sleep(30))
    assert res.status == "timeout" and res.points == 0
    assert time.perf_counter() - start < 10


def test_unknown_and_malformed_ids():
    with pytest.raises(KeyError, match="no check named"):
        get_check("99.nope")
    with pytest.raises(ValueError, match="NN.name"):
        register("conv2d")


def test_check_records_for_tests_and_runs_nothing_under_the_grader(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_RECORDS", str(tmp_path))
    check("99.add", lambda a, b: a + b)
    (line,) = [json.loads(x) for f in tmp_path.glob("checks-*.jsonl") for x in f.read_text().splitlines()]
    assert line["check_id"] == "99.add" and line["points"] == 2
    monkeypatch.setenv("MMCOURSE_GRADING", "1")
    res = check("99.add", lambda a, b: 1 / 0)
    assert res.status == "deferred" and res.points == 0 and "mmcourse grade" in capsys.readouterr().out
    assert len(list(tmp_path.glob("checks-*.jsonl"))) == 1 and len(tmp_path.glob("checks-*.jsonl").__next__()
                                                                   .read_text().splitlines()) == 1


def test_results_are_plain_copies_of_exact_types():
    class Eq(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Sneaky(torch.Tensor):
        pass

    with pytest.raises(WrongType, match="subclass of int"):
        to_plain([1, Eq(2)])
    with pytest.raises(WrongType, match="subclass of Tensor"):
        to_plain(torch.zeros(2).as_subclass(Sneaky))
    with pytest.raises(WrongType, match="torch.nn.modules.linear.Linear"):
        to_plain(nn.Linear(2, 2))
    p = nn.Parameter(torch.ones(2))
    out = to_plain({"w": p, "n": np.float64(0.5), "s": torch.Size([2, 3]),
                    "d": collections.OrderedDict(a=1), "m": torch.randn(3, 4).max(1)})
    assert type(out["w"]) is torch.Tensor and not out["w"].requires_grad and out["w"].data_ptr() != p.data_ptr()
    assert type(out["n"]) is float and out["s"] == (2, 3) and type(out["d"]) is dict and len(out["m"]) == 2
    with pytest.raises(WrongType):
        check_plain({"w": p})  # what the grader reads back must already be plain
    assert check_plain({"a": [torch.zeros(1), 1, 2.0, "x", None, True]})["a"][1] == 1


def test_forbidden_calls_fail_even_when_the_error_is_swallowed():
    x, w = torch.randn(1, 1, 5, 6), torch.randn(1, 1, 3, 3)

    def sly(x, w):
        try:
            return torch.ops.aten.conv2d(x, w)
        except Exception:  # noqa: BLE001
            return None

    for cheat in (lambda x, w: F.conv2d(x, w), lambda x, w: torch.conv2d(x, w), sly):
        with pytest.raises(ForbiddenCall, match="calls conv2d"):
            LocalAnswer(cheat, ("conv2d",), "use unfold")(x, w)
    assert LocalAnswer(lambda x, w: F.unfold(x, 3), ("conv2d",))(x, w).shape == (1, 9, 12)


def test_answers_get_copies_and_their_exceptions_are_marked():
    x = torch.ones(3)
    LocalAnswer(lambda t: t.mul_(5))(x)
    assert torch.equal(x, torch.ones(3)), "the learner's in-place change reached the test's tensor"
    with pytest.raises(ValueError) as info:
        LocalAnswer(lambda: int("x"))()
    assert from_answer(info.value)

    class Custom(Exception):
        pass

    def boom():
        raise Custom("mine")

    with pytest.raises(AnswerRaised, match="Custom: mine"):
        LocalAnswer(boom)()


@pytest.mark.timeout(240)
def test_sandbox_runs_answers_and_survives_hangs_and_crashes(tmp_path):
    box = Sandbox(["ch99_checks"], cwd=str(tmp_path), env={**os.environ, **ENV})
    try:
        box.start(time.monotonic() + 120)
        deadline = lambda s=20: time.monotonic() + s  # noqa: E731

        def remote(obj, name="x", forbid=()):
            box.ensure(name, cloudpickle.dumps(obj), deadline(), deadline(120))
            return RemoteAnswer(box, name, forbid, "", deadline())

        assert remote(lambda a, b: a + b, "add")(2, 3) == 5
        counter = type("Counter", (), {"__init__": lambda s: setattr(s, "value", 0),
                                       "step": lambda s: setattr(s, "value", s.value + 1)})
        assert remote(counter, "counter").probe(ch99_checks.probe_counter, 3) == {"value": 3, "type": "int"}
        with pytest.raises(ValueError) as info:
            remote(lambda: int("x"), "raise")()
        assert from_answer(info.value)
        with pytest.raises(ForbiddenCall):
            remote(lambda t: t.sum(), "sum", ("sum",))(torch.ones(2))
        with pytest.raises(WrongType, match="subclass of int"):
            remote(lambda: type("Eq", (int,), {"__eq__": lambda s, o: True})(1), "eq")()
        with pytest.raises(AnswerRaised, match="KeyboardInterrupt"):
            remote(lambda: (_ for _ in ()).throw(KeyboardInterrupt), "ki")()
        spin = remote(lambda: [None for _ in iter(int, 1)], "spin")
        spin.deadline = time.monotonic() + 2
        with pytest.raises(AnswerTimeout):
            spin()
        assert box.proc is None  # killed; the next answer gets a fresh sandbox
        box.start(deadline(120))
        with pytest.raises(AnswerCrashed):
            remote(lambda: os._exit(3), "exit")()
        box.start(deadline(120))
        assert remote(lambda x: x * x, "square")(4) == 16 and box.starts == 3
    finally:
        box.close()


def test_check_calls_are_found_in_cells():
    src = "%matplotlib inline\nres = check('03.conv2d', conv2d)\nmmg.check(\"03.maxpool\", pools['max'])\n" \
          "check(name, f)\nprint('check(\"03.x\", y)')"
    assert check_calls(src) == [("03.conv2d", "conv2d"), ("03.maxpool", "pools['max']")]
    assert check_calls("def f(:\ncheck('03.conv2d', conv2d)") == [("03.conv2d", "conv2d")]


@pytest.mark.timeout(300)
def test_grader_scores_a_solution_full_and_its_blank_exercise_zero(tmp_path):
    setup = f"import sys; sys.path.insert(0, {str(FIXTURES)!r}); import ch99_checks\nfrom mmcourse.grading import check"
    sol = tmp_path / "99_fixture.ipynb"
    nbformat.write(solution_nb(setup), sol)
    report = grade_notebook(sol, cell_timeout=60, deadline=200, env=ENV)
    assert (report.points, report.max_points) == (3, 7) and not report.error, report.summary()
    ex = tmp_path / "ex" / "99_fixture.ipynb"
    ex.parent.mkdir()
    ex.write_text(json.dumps(make_exercise(json.loads(sol.read_text()), sol.name)))
    report = grade_notebook(ex, cell_timeout=60, deadline=200, env=ENV)
    assert (report.points, report.max_points) == (0, 7) and not report.kernel_died, report.summary()
    statuses = {t.check_id: t.status for t in report.tasks}
    assert statuses["99.add"] == statuses["99.square"] == "not implemented", report.summary()
    assert len(report.cell_errors) == 3 and "NotImplementedError" in report.cell_errors[0]


def test_every_chapter_has_a_find_the_bug_task_and_from_04_an_experiment():
    """Issue 14: three or more graded tasks per chapter, one find-the-bug, and from chapter 04 on one experiment
    whose answer the grader checks."""
    from mmcourse.grading.registry import KINDS, chapters, checks_of_chapter

    missing = []
    for chapter in chapters():
        if chapter == "99":
            continue
        specs = checks_of_chapter(chapter)
        kinds = collections.Counter(s.kind for s in specs)
        assert set(kinds) <= set(KINDS)
        if len(specs) < 3:
            missing.append(f"{chapter}: {len(specs)} tasks")
        if not kinds["find-the-bug"]:
            missing.append(f"{chapter}: no find-the-bug task")
        if int(chapter) >= 4 and not kinds["experiment"]:
            missing.append(f"{chapter}: no experiment-and-interpret task")
    assert not missing, missing
