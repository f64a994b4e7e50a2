"""The shared check of an experiment-and-interpret answer: a dict ``{case: choice}`` compared with the run.

Chapters 04–07, 11 and 12 ask the learner to read a table their own run printed and answer one word per case
('keeps' or 'loses', 'learns' or 'chance', a defect's name, a method). The checks differ only in their words,
so they share this one function: the answer must be a dict with exactly the expected cases, each value one of
the allowed words, and every value must agree with what the experiment showed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def check_choices(got: Any, *, answer: Mapping[Any, str], options: Sequence[str] | Mapping[Any, Sequence[str]],
                  fn_name: str, what: str, cases: str, advice: str = "",
                  wrong: Mapping[Any, str] | None = None) -> None:
    """Raise ``AssertionError`` with an actionable message unless ``got`` equals ``answer`` case by case.

    Args:
        got: what the learner's function returned.
        answer: the right choice per case, in the order the messages list the cases.
        options: the words a choice may be, for every case or per case.
        fn_name: the learner's function, for the type message ("lesion_answers").
        what: the expected shape in words ("{case: 'keeps' or 'loses'}").
        cases: how to name the cases in the key message ("the four cases").
        advice: what to look at again when some choices are wrong (with the count of right ones).
        wrong: instead of ``advice``, per case what to look at again when that case is wrong (first wrong
            case in ``answer`` order).
    """
    if not isinstance(got, dict):
        raise AssertionError(f"{fn_name}() should return a dict {what}, got {type(got).__name__}")
    keys = list(answer)
    missing, extra = [k for k in keys if k not in got], [k for k in got if k not in answer]
    assert not missing and not extra, (f"answer {cases} {keys}, one entry each; missing {missing}, "
                                       f"unexpected {extra}")
    allowed = {k: list(options[k] if isinstance(options, Mapping) else options) for k in keys}
    bad = {k: v for k, v in got.items() if v not in allowed[k]}
    assert not bad, "; ".join(f"{k!r} is one of {allowed[k]}, got {v!r}" for k, v in bad.items())
    if wrong is not None:
        for k, v in answer.items():
            assert got[k] == v, f"{k!r}: {got[k]!r} is not what the run shows — {wrong[k]}"
    right = sum(got[k] == v for k, v in answer.items())
    assert right == len(answer), f"{right} of {len(answer)} answers agree with the experiment; {advice}"
