"""The course's notebooks are consistent: no outputs, headers, Colab cells, exercises in sync, all in the toc."""

import json
import re
from pathlib import Path

import pytest

from mmcourse.authoring.book_rules import problems
from mmcourse.authoring.exercises import generate
from mmcourse.authoring.notebook_tools import run_fix
from mmcourse.grading.registry import checks_of_chapter

ROOT = Path(__file__).resolve().parents[1]
BOOK = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
ALL = sorted([*BOOK, *(ROOT / "solutions").glob("*.ipynb"), *(ROOT / "exercises").glob("*.ipynb")])
HEADER = ("**Goals:**", "**Prerequisites:**", "**Time:**", "**Hardware:**", "**Challenges:**")


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_chapters():
    assert BOOK, "no chapter notebooks found under book/"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_cells(path)) if c["cell_type"] == "code" and (c.get("outputs")
                                                                                   or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `python -m mmcourse.authoring.notebook_tools fix`"


def test_badges_and_install_cells_are_up_to_date():
    assert run_fix(ROOT, write=False) == [], "run `python -m mmcourse.authoring.notebook_tools fix`"


def test_exercises_equal_a_fresh_generation():
    assert generate(ROOT, check_only=True) == [], "exercises/ is stale: run `make exercises`"


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.name)
def test_chapter_header_toc_and_exercises(path):
    head = _src(_cells(path)[0])
    missing = [h for h in HEADER if f"\n- {h}" not in head]
    assert not missing, f"{path.name}: the chapter header lacks the list items {missing} (one '- **Field:**' a line)"
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{path.stem}" in toc, f"{path.name} is not in _toc.yml"
    sol = ROOT / "solutions" / path.name
    assert sol.exists(), f"{path.name} has no graded exercises: add solutions/{path.name}"
    chapter = path.name[:2]
    registered = {c.check_id for c in checks_of_chapter(chapter)}
    used = set(re.findall(r"check\(\s*[\"'](\d\d\.[\w.]+)[\"']", "\n".join(_src(c) for c in _cells(sol))))
    assert len(registered) >= 3, f"chapter {chapter} registers {len(registered)} checks; at least 3 are needed"
    assert used == registered, f"{sol.name}: checks called {sorted(used)} != registered {sorted(registered)}"


@pytest.mark.parametrize("path", BOOK, ids=lambda p: p.name)
def test_book_does_not_link_to_pages_outside_the_book(path):
    text = "\n".join(_src(c) for c in _cells(path) if c["cell_type"] == "markdown")
    bad = re.findall(r"\]\((\.\./(?:exercises|solutions)/[^)]+)\)", text)
    assert not bad, f"{path.name} links to notebooks the HTML book does not contain: {bad}; name the path in code"


def test_toc_lists_only_existing_files():
    for name in re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text()):
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".ipynb", ".md")), f"_toc.yml: {name} is missing"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_book_rules(path):
    """Numbers glued with glue_text and shown with {glue}, no role inside inline code, tables via show_table,
    code lines of at most 88 characters, alt text on every cell that draws a figure (CONTRIBUTING.md)."""
    found = problems(json.loads(path.read_text(encoding="utf-8")), f"{path.parent.name}/{path.name}")
    assert not found, ("run `python -m mmcourse.authoring.notebook_tools fix`, then fix the rest by hand:\n"
                       + "\n".join(found))
