"""mmcourse.display: glued values are plain text without an echo, tables are real HTML tables."""

import sys

import nbformat
import pytest
import torch
from IPython.core.formatters import format_display_data
from nbclient import NotebookClient

import mmcourse.display as display_mod
from mmcourse.analysis.compare import FusionComparison
from mmcourse.display import GluedText, Table, format_value, glue_text, show_table


@pytest.mark.parametrize(("value", "spec", "text"), [
    (0.8023, ".1%", "80.2%"),
    (1234567, None, "1,234,567"),
    (torch.tensor(3), None, "3"),
    (0.05712, None, "0.0571"),
    ("concat", None, "concat"),
    (2.5, "{:.2f}×", "2.50×"),
    (True, None, "True"),
])
def test_format_value(value, spec, text):
    assert format_value(value, spec) == text


def test_glued_text_plain_repr_has_no_quotes():
    data, _ = format_display_data(GluedText("80.2%"))
    assert data["text/plain"] == "80.2%"
    str_data, _ = format_display_data("80.2%")
    assert str_data["text/plain"] == "'80.2%'"  # what a glued str shows: the defect this module avoids


def test_glued_code_has_a_markdown_form():
    data, _ = format_display_data(GluedText("only:audio", code=True))
    assert data["text/plain"] == "only:audio" and data["text/markdown"] == "`only:audio`"
    assert "text/markdown" not in format_display_data(GluedText("x"))[0]


def test_glue_text_stores_plain_text_and_returns_none(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "myst_nb", type(sys)("myst_nb"))
    sys.modules["myst_nb"].glue = lambda name, obj, display=True: calls.append((name, obj, display))
    assert glue_text("ch99_acc", 0.8023, ".1%") is None
    (name, obj, shown), = calls
    assert name == "ch99_acc" and shown is False
    assert format_display_data(obj)[0]["text/plain"] == "80.2%"


def test_glue_text_rejects_bad_names():
    with pytest.raises(ValueError, match="glue name"):
        glue_text("ch 99", 1)


def test_glue_text_in_a_kernel_leaves_no_visible_output():
    """The last glue_text of a cell must not echo its value (the issue's '0.057' under a cell)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from mmcourse.display import glue_text\nglue_text('ch99_x', 0.0571, '.3f')")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type in ("execute_result", "stream")], outputs
    visible = [k for o in outputs for k in o.get("data", {}) if not k.startswith("application/papermill.record/")]
    assert not visible, f"a glued value shows as output: {outputs}"
    stored = [o["data"]["application/papermill.record/text/plain"] for o in outputs if "data" in o]
    assert stored == ["0.057"]


TABLE_MD = "| direction | R@1 | MedR |\n|---|---:|---|\n| image→text | 28.5% | 3.0 |\n| a \\| b | <x> | 1 |"


def test_table_from_markdown_renders_html():
    t = Table.from_markdown(TABLE_MD)
    assert t.header == ["direction", "R@1", "MedR"]
    assert t.rows == [["image→text", "28.5%", "3.0"], ["a | b", "<x>", "1"]]
    html = t._repr_html_()
    assert "<th>direction</th>" in html and "<td>28.5%</td>" in html and "&lt;x&gt;" in html
    assert "|---" not in html
    assert Table.from_markdown(t._repr_markdown_()).rows == t.rows  # the Markdown form parses back


def test_table_keeps_text_around_it_as_caption_and_note():
    t = Table.from_markdown("The ladder:\n\n" + TABLE_MD + "\n\n*Contended*: no speed-up is recorded.\n")
    assert t.caption == "The ladder:" and t.note == "*Contended*: no speed-up is recorded."
    assert len(t.rows) == 2
    html = t._repr_html_()
    assert "<caption>The ladder:</caption>" in html and "<em>Contended</em>: no speed-up" in html


def test_table_checks_its_shape_and_input():
    with pytest.raises(ValueError, match="do not have 2 cells"):
        Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="not a Markdown pipe table"):
        Table.from_markdown("just a sentence | with a pipe")
    assert Table.from_records([{"n": 1234, "x": "y"}]).rows == [["1,234", "y"]]


def test_show_table_displays_a_table(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert show_table(TABLE_MD) is None
    show_table([{"a": 1}])
    assert [type(s) for s in shown] == [Table, Table]
    with pytest.raises(TypeError, match="show_table needs"):
        show_table(42)


def test_fusion_comparison_has_an_html_table():
    res = FusionComparison(rows=[{"method": "concat", "acc_mean": 0.9, "acc_std": 0.01, "params": 1234,
                                  "train_s": 1.0, "latency_ms": 0.5, "peak_mem_mib": 2.0}], accs={"concat": [0.9]})
    html = res._repr_html_()
    assert html.count("<th>") == 6 and "<td>concat</td>" in html and "<td>1,234</td>" in html
    assert "|" not in html


def test_display_sits_on_top_of_the_library():
    """Nothing in mmcourse below the chapters imports mmcourse.display (layering)."""
    from pathlib import Path

    root = Path(display_mod.__file__).parent
    users = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
             if "mmcourse.display" in p.read_text(encoding="utf-8") and p.name != "display.py"]
    tools = {"notebook.py", "authoring/book_rules.py", "authoring/notebook_tools.py", "gpu_check/chapters.py"}
    assert set(users) <= tools, users
