"""From the checks run during the nbval run: solutions pass every check, untouched exercises none.

The records (``$MMCOURSE_RECORDS/checks-*.jsonl``) are a test-only artefact written by the in-notebook
``check`` (feedback mode, :func:`mmcourse.grading.registry.record_for_tests`); they are never a grade — the
grader (``mmcourse grade``) reads nothing a notebook writes. The in-notebook check and the grader run the same
hidden tests on the same kind of plain results, so a solution that passes here passes under the grader too;
``tests/test_grading*.py`` grade fixture notebooks with the grader itself.
"""

from pathlib import Path

import pytest
from records import ROOT, read_jsonl

from mmcourse.grading.registry import checks_of_chapter

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def _results(records_dir: Path, folder: str, chapter: str) -> dict[str, dict]:
    out = {}
    for rec in read_jsonl(records_dir, "checks-*.jsonl"):
        if Path(rec["cwd"]).name == folder and rec["check_id"].startswith(chapter + "."):
            out[rec["check_id"]] = rec
    return out


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_full_marks_and_exercises_zero(path, records_dir):
    chapter = path.name[:2]
    specs = checks_of_chapter(chapter)
    assert len(specs) >= 3, f"chapter {chapter} has {len(specs)} graded checks; at least 3 are needed"
    sol = _results(records_dir, "solutions", chapter)
    ex = _results(records_dir, "exercises", chapter)
    for spec in specs:
        assert spec.check_id in sol, f"solutions/{path.name} never ran check({spec.check_id!r})"
        assert sol[spec.check_id]["points"] == spec.points, f"{spec.check_id}: {sol[spec.check_id]['message']}"
        assert spec.check_id in ex, f"exercises/{path.name} never reached check({spec.check_id!r})"
        assert ex[spec.check_id]["points"] == 0, f"the blank exercise scores on {spec.check_id}"
