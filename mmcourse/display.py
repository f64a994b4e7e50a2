"""What a chapter shows its reader: glued numbers as plain text and tables as real tables (every chapter).

``glue_text("ch09_acc", acc, ".1%")`` stores ``acc`` formatted once, in Python, as plain text (no quotes) for
the prose's ``{glue}`ch09_acc``` role, and shows nothing in the notebook: the cell output stays what the
chapter prints. ``show_table(...)`` displays a :class:`Table`, an HTML ``<table>`` in the book and in
JupyterLab alike (Markdown only where nothing renders HTML). Figures get their alt text from the cell's
metadata, not from here: ``{"mystnb": {"image": {"alt": "..."}}}`` (see CONTRIBUTING.md).

This module sits on top: it imports only third-party packages, and nothing else in ``mmcourse`` imports it.
"""

from __future__ import annotations

import html
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["GluedText", "Table", "format_value", "glue_text", "show_table"]


def format_value(value: Any, spec: str | None = None) -> str:
    """``value`` as the prose reads it.

    ``spec`` is a format spec (``".1%"``, ``",.0f"``, ``".2f"``) or a template with one ``{}`` field
    (``"{:.2f}×"``, ``"{:.0f} Hz"``). Without it: text stays as it is, integers get thousands separators
    (``12,345``), other numbers three significant digits; a 0-d tensor or NumPy scalar counts as its number.
    """
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # 0-d torch tensor / NumPy scalar
    if spec is not None:
        return spec.format(value) if "{" in spec else format(value, spec)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.3g}"
    return str(value)


class GluedText:
    """A piece of text whose ``text/plain`` representation is the text itself (no quotes, unlike ``str``).

    With ``code=True`` it also has a Markdown form, the text as inline code: the book shows it in code font
    (a method name, an identifier)."""

    def __init__(self, text: str, code: bool = False) -> None:
        self.text = str(text)
        self.code = code

    def _repr_markdown_(self) -> str | None:
        return f"`{self.text}`" if self.code else None

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GluedText | str) and str(other) == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's text/plain
        p.text(self.text)


def glue_text(name: str, value: Any, spec: str | None = None, *, code: bool = False) -> None:
    """Glue ``value`` (formatted by :func:`format_value` with ``spec``) for the prose's ``{glue}`name``` role.

    Shows nothing and returns ``None``, so a cell ending in ``glue_text(...)`` has no output. ``code=True``
    shows the text in code font (never put the role itself inside backticks). Outside a book build (no
    myst-nb, e.g. in Colab) it only checks that the value formats.

    Raises:
        ValueError: ``name`` is not a valid glue key (letters, digits, ``_``, ``-``, ``.``).
    """
    if not re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
        raise ValueError(f"glue name {name!r} must be letters, digits, '_', '-' or '.', starting with a letter")
    text = GluedText(format_value(value, spec), code=code)
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab / plain Jupyter: the prose shows the role's key, nothing to store
        return None
    _glue(name, text, display=False)
    return None


def _cells_of(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


class Table:
    """A table for the reader: ``header`` names the columns, ``rows`` hold the cells (any value; text as is).

    Renders as an HTML ``<table>`` (book and JupyterLab), as a Markdown pipe table where only Markdown
    renders, and as aligned text in ``print``.
    """

    def __init__(self, header: Sequence[Any], rows: Sequence[Sequence[Any]], caption: str | None = None,
                 note: str | None = None) -> None:
        self.header = [str(h) for h in header]
        self.rows = [[c if isinstance(c, str) else format_value(c) for c in row] for row in rows]
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.header)]
        if bad:
            raise ValueError(f"rows {bad} do not have {len(self.header)} cells like the header {self.header}")
        self.caption = caption
        self.note = note

    @classmethod
    def from_markdown(cls, text: str, caption: str | None = None) -> Table:
        """Parse a Markdown pipe table (``| a | b |`` / ``|---|---|`` / rows). Text before the table becomes the
        caption (unless ``caption`` is given), text after it a note under the table.

        Raises:
            ValueError: ``text`` holds no pipe table (a header line, then a ``|---|`` separator line).
        """
        lines = text.strip().splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("|")), len(lines))
        end = next((i for i in range(start, len(lines)) if not lines[i].strip().startswith("|")), len(lines))
        table = lines[start:end]
        if len(table) < 2 or not re.fullmatch(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?", table[1].strip()):
            raise ValueError(f"not a Markdown pipe table (a header line, then |---|): {text[:80]!r}")
        before, after = "\n".join(lines[:start]).strip(), "\n".join(lines[end:]).strip()
        return cls(_cells_of(table[0]), [_cells_of(ln) for ln in table[2:]], caption=caption or before or None,
                   note=after or None)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], caption: str | None = None) -> Table:
        """One row per mapping; the columns are the first mapping's keys."""
        if not records:
            raise ValueError("from_records got no records")
        header = list(records[0])
        return cls(header, [[r[h] for h in header] for r in records], caption=caption)

    def _repr_html_(self) -> str:
        esc = html.escape
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        note = ""
        if self.note:  # the note may use *emphasis*, as Markdown would
            note = '<p class="mmcourse-table-note">' + re.sub(r"\*(.+?)\*", r"<em>\1</em>", esc(self.note)) + "</p>"
        return (f'<div class="mmcourse-table"><table>{cap}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>{note}</div>")

    def _repr_markdown_(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [line(self.header), "|" + "---|" * len(self.header), *(line(r) for r in self.rows)]
        return ((f"*{self.caption}*\n\n" if self.caption else "") + "\n".join(out)
                + (f"\n\n{self.note}" if self.note else ""))

    def __str__(self) -> str:
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*self.header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in self.rows)]
        return "\n".join(([self.caption] if self.caption else []) + lines + ([self.note] if self.note else []))

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def show_table(table: Table | str | Sequence[Mapping[str, Any]] | Any, caption: str | None = None) -> None:
    """Display ``table`` as a real table: a :class:`Table`, a Markdown pipe table (text), a list of dicts, or
    any object with ``_repr_html_`` (shown as it is). Returns ``None`` (nothing echoes)."""
    from IPython.display import display

    if isinstance(table, str):
        table = Table.from_markdown(table, caption=caption)
    elif isinstance(table, Sequence) and table and isinstance(table[0], Mapping):
        table = Table.from_records(table, caption=caption)
    elif not isinstance(table, Table) and not hasattr(table, "_repr_html_"):
        raise TypeError(f"show_table needs a Table, Markdown text, records or an object with _repr_html_; "
                        f"got {type(table).__name__}")
    display(table)
