"""make test runs each book chapter once: nbval's executed chapters reach the book build's jupyter-cache.

Runs a real pytest + nbval on two tiny chapters in a temporary ``book/`` folder, with the repository's
``conftest.py``, and reads the cache the way ``mmcourse.authoring.book_build.pre_execute`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _chapter(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


@pytest.mark.timeout(300)
def test_passed_book_chapters_are_cached_with_their_outputs_and_widgets_failed_ones_are_not(tmp_path: Path) -> None:
    from jupyter_cache import get_cache

    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    _chapter(book / "good.ipynb", ["x = 6 * 7\nprint(x)", "from IPython.display import display\n"
                                   "display({'text/plain': 'shown'}, raw=True, metadata={'k': 1})", "x"])
    _chapter(book / "bad.ipynb", ["y = 1", "assert y == 2, 'the claim does not hold'"])
    _chapter(book / "widget.ipynb", WIDGET_CELLS)
    cache = tmp_path / "cache"
    env = {**os.environ, "MMCOURSE_BOOK_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("MMCOURSE_RECORDS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "-p", "no:xdist", "book"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout[-2000:]  # the bad chapter fails its assert
    assert "1 failed" in proc.stdout, proc.stdout[-2000:]

    db = get_cache(str(cache))
    good = db.get_cache_bundle(db.match_cache_notebook(nbformat.read(book / "good.ipynb", as_version=4)).pk).nb
    code = [c for c in good.cells if c.cell_type == "code"]
    assert [o.output_type for o in code[0].outputs] == ["stream"] and code[0].outputs[0].text == "42\n"
    assert code[1].outputs[0].output_type == "display_data" and code[1].outputs[0].metadata == {"k": 1}
    assert code[2].outputs[0].output_type == "execute_result" and code[2].outputs[0].data["text/plain"] == "42"
    with pytest.raises(KeyError):  # a failed chapter is left to the book build to run (and report)
        db.match_cache_notebook(nbformat.read(book / "bad.ipynb", as_version=4))
    nbformat.validate(good)

    # A chapter with widgets is cached with the widget state and cell outputs nbclient (the book build) gives it
    widget = db.get_cache_bundle(db.match_cache_notebook(nbformat.read(book / "widget.ipynb", as_version=4)).pk).nb
    nbformat.validate(widget)
    from mmcourse.authoring.book_build import _execute

    _, reference, err, _ = _execute(book / "widget.ipynb", 120)
    assert err is None, err
    assert _widget_view(widget) == _widget_view(reference)
    models, outputs = _widget_view(widget)
    assert "IntSliderModel" in models and "OutputModel" in models
    assert outputs[-1] == [("stream", "after\n")], outputs  # printed outside the widget: the cell's own output
    assert ["x is 2\ntwice 4\n"] in models["OutputModel"], models  # printed inside interact: the widget's


WIDGET_CELLS = ["import ipywidgets\nipywidgets.IntSlider(3)",
                "def f(x=2):\n    print('x is', x)\n    print('twice', 2 * x)\n\n\n"
                "_ = ipywidgets.interact(f, x=(0, 5))",
                "print('after')"]


def _widget_view(nb) -> tuple[dict[str, list], list[list[tuple]]]:
    """What the HTML shows of a notebook's widgets, without the model ids that differ run to run: each model
    name with the texts its Output widgets hold, and each cell's outputs (a widget view as its model's name)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models: dict[str, list] = {}
    for model in state.values():
        shown = ["".join(o.get("text", "") for o in model["state"].get("outputs", []))]
        models.setdefault(model["model_name"], []).append(shown if model["model_name"] == "OutputModel" else
                                                        model["state"].get("value"))
    cells = []
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        shown = []
        for out in cell.outputs:
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            shown.append((out.output_type, state[view["model_id"]]["model_name"] if view else out.get("text")))
        cells.append(shown)
    return {k: sorted(v, key=str) for k, v in models.items()}, cells


@pytest.mark.timeout(300)
def test_the_book_builds_own_execution_is_found_by_jupyter_book(tmp_path: Path) -> None:
    """pre_execute's cached notebook must hash like the source, or Jupyter Book executes it a second time."""
    from jupyter_cache import get_cache

    from mmcourse.authoring.book_build import _execute

    path = tmp_path / "chapter.ipynb"
    _chapter(path, ["print(6 * 7)"])
    _, nb, err, _ = _execute(path, 120)
    assert err is None, err
    db = get_cache(str(tmp_path / "cache"))
    from jupyter_cache.base import CacheBundleIn

    db.cache_notebook_bundle(CacheBundleIn(nb, str(path)), check_validity=False)
    record = db.match_cache_notebook(nbformat.read(path, as_version=4))  # KeyError if the hash differs
    code = [c for c in db.get_cache_bundle(record.pk).nb.cells if c.cell_type == "code"]
    assert code[0].outputs[0].text == "42\n"
