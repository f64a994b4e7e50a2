"""mmcourse.authoring.exercises: the generator blanks solutions, tags the cells that need them, stays in sync."""

import json

import nbformat
import pytest

from mmcourse.authoring.exercises import SolutionMarkerError, blank_source, generate, make_exercise

SOLVED = '''def add(a, b):
    """Return a + b."""
    # BEGIN SOLUTION
    total = a + b
    return total
    # END SOLUTION'''


def solution_nb(setup: str = "from mmcourse.grading import check", extra_cells=()):
    """A two-task solutions notebook of the fixture chapter 99 (also graded in tests/test_grading.py)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · Fixture\n\nbadge: solutions/99_fixture.ipynb"),
        nbformat.v4.new_code_cell(setup),
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


def test_blank_source_keeps_indentation_and_rejects_bad_markers():
    out = blank_source(SOLVED)
    assert "total" not in out and "    raise NotImplementedError()" in out and '"""Return a + b."""' in out
    with pytest.raises(SolutionMarkerError, match="inside a function"):
        blank_source("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")
    with pytest.raises(SolutionMarkerError, match="never closed"):
        blank_source("def f():\n    # BEGIN SOLUTION\n    return 1")


def test_make_exercise_tags_cells_that_use_blank_functions():
    ex = make_exercise(json.loads(nbformat.writes(solution_nb())), "99_fixture.ipynb")
    tags = [c.get("metadata", {}).get("tags", []) for c in ex["cells"]]
    assert "raises-exception" in tags[4] and "raises-exception" in tags[5]  # calls add; uses its result
    assert "raises-exception" not in tags[3] and "raises-exception" not in tags[7]  # check() never raises
    assert "raises-exception" not in tags[8] and "raises-exception" in tags[9]  # a helper calling a blank one
    assert "exercises/99_fixture.ipynb" in ex["cells"][0]["source"]
    assert all(c.get("outputs", []) == [] for c in ex["cells"] if c["cell_type"] == "code")
    with pytest.raises(SolutionMarkerError, match="no '# BEGIN SOLUTION'"):
        make_exercise(json.loads(nbformat.writes(nbformat.v4.new_notebook())), "x.ipynb")


def test_make_exercise_tags_cells_that_hand_a_blank_function_to_a_call():
    handed = [nbformat.v4.new_code_cell("loader = DataLoader(range(4), collate_fn=square)"),
              nbformat.v4.new_code_cell("out = list(map(add, [1], [2]))"),
              nbformat.v4.new_code_cell("n = len([square])")]  # a list literal holding it is not a call with it
    ex = make_exercise(json.loads(nbformat.writes(solution_nb(extra_cells=handed))), "99_fixture.ipynb")
    tags = [c.get("metadata", {}).get("tags", []) for c in ex["cells"]][-3:]
    assert "raises-exception" in tags[0] and "raises-exception" in tags[1]
    assert "raises-exception" not in tags[2]


def test_generate_writes_then_reports_in_sync(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(solution_nb(), tmp_path / "solutions" / "99_fixture.ipynb")
    assert generate(tmp_path, check_only=True) == ["99_fixture.ipynb"]
    assert generate(tmp_path) == ["99_fixture.ipynb"]
    assert generate(tmp_path, check_only=True) == []
