"""Every graded check rejects plausible wrong answers: the mutants of ``tests/mutants/chNN.py``.

For each registered check id (every ``mmcourse/grading/chNN.py``, new chapters included) there must be at
least two mutants, and each must fail — with the words its entry names in the learner's message — both in the
notebook's ``check`` (this process) and under the grader (the sandbox, as ``mmcourse grade`` runs it).
"""

import importlib
import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from mmcourse.grading.registry import chapters, checks_of_chapter, judge, run_check
from mmcourse.grading.sandbox import RemoteAnswer, Sandbox

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
from mutants import Mutant  # noqa: E402

SPECS = {s.check_id: s for chapter in chapters() for s in checks_of_chapter(chapter)}


def _mutants(check_id: str) -> dict:
    try:
        module = importlib.import_module(f"mutants.ch{check_id[:2]}")
    except ModuleNotFoundError:
        return {}
    return getattr(module, "MUTANTS", {}).get(check_id, {})


def _unpack(mutant) -> tuple[object, str]:
    return (mutant.answer, mutant.says) if isinstance(mutant, Mutant) else (mutant, "")


def _verdict(check_id: str, what: str, result, says: str) -> None:
    assert not result.passed and result.points == 0, \
        f"{check_id}: the wrong answer {what!r} passes the hidden test — strengthen the test"
    assert result.status in ("failed", "error"), f"{check_id} / {what}: status {result.status}: {result.message}"
    assert says.lower() in result.message.lower(), \
        f"{check_id} / {what}: the message should say {says!r} so the learner knows what to fix: {result.message}"


@pytest.mark.parametrize("check_id", sorted(SPECS))
def test_check_rejects_its_mutants(check_id):
    mutants = _mutants(check_id)
    assert len(mutants) >= 2, (f"{check_id} has {len(mutants)} mutant(s): add at least two plausible wrong answers "
                               f"to MUTANTS in tests/mutants/ch{check_id[:2]}.py (see CONTRIBUTING.md)")
    for what, mutant in mutants.items():
        answer, says = _unpack(mutant)
        _verdict(check_id, what, run_check(check_id, answer), says)


def test_no_mutant_targets_a_check_that_does_not_exist():
    stale = [cid for path in (TESTS / "mutants").glob("ch*.py")
             for cid in importlib.import_module(f"mutants.{path.stem}").MUTANTS if cid not in SPECS]
    assert not stale, f"mutants for checks that are not registered: {stale}"


@pytest.mark.timeout(600)
def test_mutants_fail_under_the_grader_too(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    box = Sandbox(sorted({f"mmcourse.grading.ch{c[:2]}" for c in SPECS}), cwd=str(tmp_path), env=env)
    try:
        box.start(time.monotonic() + 180)
        for check_id, spec in sorted(SPECS.items()):
            for what, mutant in _mutants(check_id).items():
                answer, says = _unpack(mutant)
                name = f"{check_id}/{what}"
                if box.proc is None:
                    box.start(time.monotonic() + 180)
                box.ensure(name, cloudpickle.dumps(answer), time.monotonic() + 60, time.monotonic() + 60)
                remote = RemoteAnswer(box, name, spec.forbid, spec.forbid_note, time.monotonic() + spec.timeout)
                _verdict(check_id, what, judge(spec, remote), says)
    finally:
        box.close()
