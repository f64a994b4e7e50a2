"""The grader on real course notebooks, end to end: a solutions notebook whose answers include a class and
probed checks scores full marks, and an untouched exercise notebook scores zero without crashing.

(Every solutions and exercises notebook is graded this way by hand before a release — see CONTRIBUTING.md;
during ``make test`` the nbval run checks them all through the in-notebook ``check``.)
"""

from pathlib import Path

import pytest

from mmcourse.grading.grader import grade_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path, full", [("solutions/11_multitask.ipynb", True), ("exercises/03_convolution.ipynb",
                                                                                 False)])
def test_real_notebook_grades(path, full):
    report = grade_notebook(ROOT / path, cell_timeout=300, deadline=500)
    assert report.error is None and not report.kernel_died and not report.timed_out_cells, report.summary()
    assert report.max_points >= 3
    if full:
        assert report.points == report.max_points and not report.cell_errors, report.summary()
    else:
        assert report.points == 0 and {t.status for t in report.tasks} == {"not implemented"}, report.summary()
