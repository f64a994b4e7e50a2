"""mmcourse.grading: checks never crash, the generator blanks solutions, the grader scores and times out."""

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mmcourse.grading.exercises import SolutionMarkerError, blank_source, generate, make_exercise
from mmcourse.grading.grader import grade_notebook
from mmcourse.grading.registry import check, get_check, register, run_check

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import ch99_checks  # noqa: E402,F401  (registers 99.add and 99.square)


def test_right_wrong_raising_and_blank_answers(capsys):
    assert run_check("99.add", lambda a, b: a + b).points == 2
    wrong = run_check("99.add", lambda a, b: a - b)
    assert wrong.points == 0 and wrong.status == "failed" and "expected 3" in wrong.message
    assert "Hint: return a + b" in wrong.message
    raising = run_check("99.add", lambda a, b: 1 / 0)
    assert raising.status == "error" and "ZeroDivisionError" in raising.message

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


def test_record_writes_jsonl(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_RECORDS", str(tmp_path))
    check("99.add", lambda a, b: a + b)
    (line,) = [json.loads(x) for f in tmp_path.glob("grades-*.jsonl") for x in f.read_text().splitlines()]
    assert line["check_id"] == "99.add" and line["points"] == 2


SOLVED = '''def add(a, b):
    """Return a + b."""
    # BEGIN SOLUTION
    total = a + b
    return total
    # END SOLUTION'''


def test_blank_source_keeps_indentation_and_rejects_bad_markers():
    out = blank_source(SOLVED)
    assert "total" not in out and "    raise NotImplementedError()" in out and '"""Return a + b."""' in out
    with pytest.raises(SolutionMarkerError, match="inside a function"):
        blank_source("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")
    with pytest.raises(SolutionMarkerError, match="never closed"):
        blank_source("def f():\n    # BEGIN SOLUTION\n    return 1")


def _solution_nb(extra_cells=()):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · Fixture\n\nbadge: solutions/99_fixture.ipynb"),
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(FIXTURES)!r}); import ch99_checks\n"
                                  "from mmcourse.grading import check"),
        nbformat.v4.new_code_cell(SOLVED),
        nbformat.v4.new_code_cell("check('99.add', add)"),
        nbformat.v4.new_code_cell("y = add(1, 2)"),
        nbformat.v4.new_code_cell("z = y * 2"),
        nbformat.v4.new_code_cell("def square(x):\n    # BEGIN SOLUTION\n    return x * x\n    # END SOLUTION"),
        nbformat.v4.new_code_cell("check('99.square', square)"),
        nbformat.v4.new_code_cell("def twice(x):\n    return 2 * square(x)"),
        nbformat.v4.new_code_cell("w = twice(3)"),
        *extra_cells,
    ]
    return nb


def test_make_exercise_tags_cells_that_use_blank_functions():
    ex = make_exercise(json.loads(nbformat.writes(_solution_nb())), "99_fixture.ipynb")
    tags = [c.get("metadata", {}).get("tags", []) for c in ex["cells"]]
    assert "raises-exception" in tags[4] and "raises-exception" in tags[5]  # calls add; uses its result
    assert "raises-exception" not in tags[3] and "raises-exception" not in tags[7]  # check() never raises
    assert "raises-exception" not in tags[8] and "raises-exception" in tags[9]  # a helper calling a blank one
    assert "exercises/99_fixture.ipynb" in ex["cells"][0]["source"]
    assert all(c.get("outputs", []) == [] for c in ex["cells"] if c["cell_type"] == "code")
    with pytest.raises(SolutionMarkerError, match="no '# BEGIN SOLUTION'"):
        make_exercise(json.loads(nbformat.writes(nbformat.v4.new_notebook())), "x.ipynb")


def test_generate_writes_then_reports_in_sync(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(_solution_nb(), tmp_path / "solutions" / "99_fixture.ipynb")
    assert generate(tmp_path, check_only=True) == ["99_fixture.ipynb"]
    assert generate(tmp_path) == ["99_fixture.ipynb"]
    assert generate(tmp_path, check_only=True) == []


@pytest.mark.timeout(180)
def test_grader_scores_solution_exercise_hang_and_crash(tmp_path):
    sol = tmp_path / "99_fixture.ipynb"
    nbformat.write(_solution_nb(), sol)
    report = grade_notebook(sol, cell_timeout=30)
    assert (report.points, report.max_points) == (3, 3), report.summary()

    ex = tmp_path / "ex" / "99_fixture.ipynb"
    ex.parent.mkdir()
    ex.write_text(json.dumps(make_exercise(json.loads(sol.read_text()), sol.name)))
    report = grade_notebook(ex, cell_timeout=30)
    assert (report.points, report.max_points) == (0, 3) and not report.kernel_died
    assert {t.status for t in report.tasks} == {"not implemented"}

    hang = tmp_path / "hang" / "99_fixture.ipynb"
    hang.parent.mkdir()
    nb = _solution_nb()
    nb.cells.insert(4, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(nb, hang)
    start = time.perf_counter()
    report = grade_notebook(hang, cell_timeout=15)  # generous: importing torch on a busy machine takes seconds
    assert time.perf_counter() - start < 150
    assert report.timed_out_cells == [4] and report.points == 3, report.summary()  # later cells still ran

    crash = tmp_path / "crash" / "99_fixture.ipynb"
    crash.parent.mkdir()
    nb = _solution_nb()
    nb.cells.insert(4, nbformat.v4.new_code_cell("import os; os._exit(1)"))
    nbformat.write(nb, crash)
    report = grade_notebook(crash, cell_timeout=30)
    assert report.kernel_died and report.points == 2 and report.max_points == 3, report.summary()
