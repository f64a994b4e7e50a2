"""``Diagram``: a drawn figure plus its alt text, shown by a notebook cell and saved as PNG or SVG.

Every diagram function of ``mmcourse.diagrams`` returns one. In a notebook the last expression of a cell,
``residual_block(pre_activation=True)``, displays it as an HTML ``<img>`` whose ``alt`` attribute is the
diagram's alt text (so screen readers and the built book get it); ``.png()``/``.svg()``/``.save()`` write
files (``python -m mmcourse.diagrams`` writes all of them). The figure is a plain ``matplotlib.figure.Figure``
(not registered with pyplot), so nothing is shown twice and nothing leaks between cells.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mmcourse.diagrams.style import BACKGROUND

DPI = 200  # PNG resolution: a 7-inch diagram is 1400 pixels wide, sharp on high-density screens
CSS_DPI = 96  # how many CSS pixels an inch of figure takes in the HTML page


@dataclass(frozen=True)
class Geometry:
    """What a diagram is made of, in inches, for the layout tests.

    ``boxes`` maps node names to ``(x0, y0, x1, y1)``; ``arrows`` lists ``(source, target, points)``
    polylines; ``fitted`` pairs a label's ``Text`` with the box (name) it must stay inside.
    """

    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    arrows: list[tuple[str, str, list[tuple[float, float]]]] = field(default_factory=list)
    fitted: list[tuple[Any, str]] = field(default_factory=list)


@dataclass
class Diagram:
    """A finished diagram: ``fig`` (matplotlib), ``alt`` (one or two sentences saying what it shows), ``name``.

    Example:
        >>> d = residual_block(pre_activation=True)   # doctest: +SKIP
        >>> d.alt                                      # doctest: +SKIP
        'A pre-activation residual block: ...'
        >>> d.save("block.png")                        # doctest: +SKIP
    """

    fig: Figure
    alt: str
    name: str
    geometry: Geometry = field(default_factory=Geometry)
    transform: Any = None  # inches → pixels (what the layout checks measure with)

    def __post_init__(self) -> None:
        if not self.alt or not self.alt.strip():
            raise ValueError(f"diagram {self.name!r} needs alt text saying what it shows")

    @property
    def size(self) -> tuple[float, float]:
        """Width and height in inches."""
        w, h = self.fig.get_size_inches()
        return float(w), float(h)

    def png(self, dpi: float = DPI) -> bytes:
        """The diagram as PNG bytes (opaque white background; the alt text in the PNG's Description)."""
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=dpi, facecolor=BACKGROUND, transparent=False,
                         metadata={"Title": self.name, "Description": self.alt})
        return buf.getvalue()

    def svg(self) -> str:
        """The diagram as an SVG document (text drawn as paths, so it looks the same without our fonts)."""
        buf = io.StringIO()
        self.fig.savefig(buf, format="svg", facecolor=BACKGROUND, transparent=False,
                         metadata={"Title": self.name, "Description": self.alt})
        return buf.getvalue()

    def save(self, path: str | Path, dpi: float = DPI) -> Path:
        """Write ``path`` as PNG or SVG (by its suffix) and return it."""
        path = Path(path)
        if path.suffix.lower() == ".svg":
            path.write_text(self.svg(), encoding="utf-8")
        elif path.suffix.lower() == ".png":
            path.write_bytes(self.png(dpi))
        else:
            raise ValueError(f"save a diagram as .png or .svg, got {path.name!r}")
        return path

    def html(self, png: bytes | None = None) -> str:
        """An ``<img>`` with the PNG inline and ``alt`` set, at most the width of its container."""
        data = base64.b64encode(self.png() if png is None else png).decode("ascii")
        width = round(self.size[0] * CSS_DPI)
        return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt, quote=True)}" '
                f'width="{width}" style="max-width:100%;height:auto" class="mmcourse-diagram" '
                f'data-diagram="{html.escape(self.name, quote=True)}">')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Front ends and the book (myst-nb) prefer text/html, which carries the alt text; image/png is there
        # for those that do not render HTML (PDF builds).
        png = self.png()
        return {"text/html": self.html(png), "image/png": base64.b64encode(png).decode("ascii"),
                "text/plain": repr(self)}

    def close(self) -> None:
        """Free the figure's memory (the gallery draws many)."""
        self.fig.clf()

    def show(self) -> None:
        """Display the diagram in a notebook (what the last expression of a cell does anyway)."""
        from IPython.display import display

        display(self)

    def __repr__(self) -> str:
        return f"<Diagram {self.name}: {self.alt}>"
