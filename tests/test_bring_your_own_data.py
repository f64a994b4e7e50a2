"""Runs every code block of ``book/bring_your_own_data.md``, in order, in a temporary folder: the walk-through
from WAV files and images on disk to a fused model runs exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

PAGE = Path(__file__).resolve().parents[1] / "book" / "bring_your_own_data.md"


def code_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_page_has_the_whole_path():
    blocks = code_blocks(PAGE.read_text())
    assert len(blocks) >= 6
    joined = "\n".join(blocks)
    for step in ("wave.open", "plt.imread", "standardize_datasets", "fit(", "missing_modality_eval", "MyEncoder"):
        assert step in joined, step
    assert "LazyLinear(" not in joined


def test_walk_through_runs_as_written(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "bring_your_own_data"}
    for i, block in enumerate(code_blocks(PAGE.read_text())):
        try:
            exec(compile(block, f"{PAGE.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block that failed
            pytest.fail(f"code block {i + 1} of {PAGE.name} failed: {type(e).__name__}: {e}")
    folder = tmp_path / "my_data"
    assert (folder / "pairs.csv").exists() and len(list((folder / "audio").glob("*.wav"))) == 500
    train, test = namespace["train"], namespace["test"]
    assert (len(train), len(test)) == (400, 100)
    assert namespace["accuracy"] > 0.6, namespace["accuracy"]  # chance is 10%; clean images carry most of it
    missing = namespace["missing"]
    assert missing[("audio",)] > 0.5 and missing[("image",)] > 0.2, missing
