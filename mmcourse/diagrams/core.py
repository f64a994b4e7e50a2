"""The drawing core: a ``Canvas`` measured in inches with boxes, operation circles, arrows, groups and labels.

Every diagram function (chapters 04–13) draws on one canvas and ends with ``canvas.finish(alt)``. Positions
are the centres of nodes in inches from the bottom-left corner; a box is as wide as its label needs unless a
width is given. Arrows join named nodes (``"conv1"``), a side of a node (``("conv1", "right")``) or a point,
straight or with right-angle elbows (``route="hv"``: horizontal then vertical); a ``label`` on an arrow is a
tensor shape (``"[B, T, D]"``, set in a monospace font) or a name. The canvas records every box and arrow so
that ``tests/test_diagrams.py`` can check that no label leaves its box and no arrow crosses a box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import BboxImage
from matplotlib.lines import Line2D
from matplotlib.patches import ArrowStyle, Circle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.transforms import Affine2D, Bbox, TransformedBbox

from mmcourse.diagrams import style as st
from mmcourse.diagrams.diagram import Diagram, Geometry
from mmcourse.diagrams.node import End, Node, Point

HEAD = ArrowStyle("-|>", head_length=0.45, head_width=0.22)


class Canvas:
    """A ``width`` × ``height`` inch drawing surface with an opaque white background.

    Args:
        width: at most ``MAX_WIDTH`` (7 in, the book's column).
        height: in inches.
        name: the diagram's name (file name in the gallery).
    """

    def __init__(self, width: float, height: float, name: str):
        if not 0 < width <= st.MAX_WIDTH + 1:  # drawing room; ``trim`` enforces MAX_WIDTH on the result
            raise ValueError(f"diagram {name!r} is {width} in wide; the book column holds at most {st.MAX_WIDTH} in")
        self.name, self.width, self.height = name, width, height
        self.fig = Figure(figsize=(width, height), dpi=100, facecolor=st.BACKGROUND)
        FigureCanvasAgg(self.fig)
        # No axes: every artist lives on the figure, placed in inches by this transform (``trim`` shifts it).
        self._shift = Affine2D()
        self.transform = self._shift + self.fig.dpi_scale_trans
        self.nodes: dict[str, Node] = {}
        self.geometry = Geometry()
        self._renderer = self.fig.canvas.get_renderer()

    # -- text -------------------------------------------------------------------------------------------
    def measure(self, text: str, size: float = st.FONT, family: str | None = None, bold: bool = False
                ) -> tuple[float, float]:
        """Width and height of ``text`` in inches at font ``size``."""
        t = self.fig.text(0, 0, text, fontsize=size, family=family, fontweight="bold" if bold else "normal")
        bb = t.get_window_extent(self._renderer)
        t.remove()
        return bb.width / self.fig.dpi, bb.height / self.fig.dpi

    def text(self, xy: Point, s: str, *, size: float = st.SMALL, color: str = st.MUTED, ha: str = "center",
             va: str = "center", mono: bool = False, bold: bool = False, italic: bool = False,
             backdrop: bool = False) -> Text:
        """Free text at ``xy`` (captions, formulas, names); ``backdrop`` puts it on white over lines."""
        bbox = dict(boxstyle="square,pad=0.1", fc=st.BACKGROUND, ec="none") if backdrop else None
        return self.fig.text(*xy, s, fontsize=size, color=color, ha=ha, va=va, zorder=6, bbox=bbox,
                             transform=self.transform,
                            family=st.SHAPE_FONT if mono else None, fontweight="bold" if bold else "normal",
                            fontstyle="italic" if italic else "normal")

    def title(self, xy: Point, s: str, ha: str = "center") -> Text:
        """A panel title (bold, ``TITLE`` size)."""
        return self.text(xy, s, size=st.TITLE, color=st.TEXT, bold=True, ha=ha)

    # -- nodes ------------------------------------------------------------------------------------------
    def _add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValueError(f"diagram {self.name!r} already has a node called {node.name!r}")
        self.nodes[node.name] = node
        self.geometry.boxes[node.name] = node.bbox
        return node

    def box(self, name: str, xy: Point, label: str, *, kind_: str = "learned", w: float | None = None,
            h: float | None = None, size: float = st.FONT, bold: bool = False, mono: bool = False,
            stack: int = 0) -> Node:
        """A rounded box centred at ``xy`` with ``label``; sized to the label unless ``w``/``h`` are given.

        ``stack`` draws that many copies behind it, offset down and right: "the same thing, several times"
        (heads, layers).
        """
        look = st.kind(kind_)
        tw, th = self.measure(label, size, st.SHAPE_FONT if mono else None, bold)
        w = max(tw + 2 * st.PAD_X, 0.45) if w is None else w
        h = max(th + 0.16, st.BOX_HEIGHT) if h is None else h
        x, y = xy
        for k in range(stack, 0, -1):
            self.patch(FancyBboxPatch((x - w / 2 + 0.07 * k, y - h / 2 - 0.07 * k), w, h,
                                             boxstyle=f"round,pad=0,rounding_size={min(0.07, h / 4)}",
                                             fc=look.face, ec=look.edge, lw=st.LINE_WIDTH * 0.8, zorder=3))
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={min(0.07, h / 4)}",
                               fc=look.face, ec=look.edge, lw=st.LINE_WIDTH, ls=look.linestyle, hatch=look.hatch,
                               zorder=3)
        self.patch(patch)
        if look.hatch:
            patch.set_hatch_linewidth(0.6) if hasattr(patch, "set_hatch_linewidth") else None
        bbox = dict(boxstyle="round,pad=0.08", fc=look.face, ec="none") if look.hatch else None
        t = self.fig.text(x, y, label, fontsize=size, color=st.TEXT, ha="center", va="center", zorder=5, bbox=bbox,
                          transform=self.transform,
                         family=st.SHAPE_FONT if mono else None, fontweight="bold" if bold else "normal",
                         linespacing=1.25)
        node = self._add(Node(name, x, y, w, h))
        self.geometry.fitted.append((t, name))
        return node

    def op(self, name: str, xy: Point, symbol: str, *, r: float = 0.15, size: float = st.FONT + 1) -> Node:
        """A small circle for an operation on tensors: ``"+"`` (drawn ⊕), ``"×"`` (⊗), ``"σ"``, ``"tanh"``…"""
        look = st.kind("op")
        self.patch(Circle(xy, r, fc=look.face, ec=look.edge, lw=st.LINE_WIDTH, zorder=3))
        t = self.fig.text(*xy, symbol, fontsize=size, color=st.TEXT, ha="center", va="center", zorder=5,
                          transform=self.transform)
        node = self._add(Node(name, xy[0], xy[1], 2 * r, 2 * r, circle=True))
        self.geometry.fitted.append((t, name))
        return node

    def point(self, name: str, xy: Point, dot: bool = False) -> Node:
        """An invisible node (a place arrows start from); ``dot`` draws a junction where a line splits."""
        if dot:
            self.patch(Circle(xy, 0.035, fc=st.LINE, ec="none", zorder=4))
        return self._add(Node(name, xy[0], xy[1], 0.0, 0.0, circle=True))

    def patch(self, p: Patch) -> Patch:
        """Add a matplotlib patch whose coordinates are inches."""
        p.set_transform(self.transform)
        self.fig.add_artist(p)
        return p

    def line(self, xs: Sequence[float], ys: Sequence[float], *, color: str = st.LINE, lw: float = st.LINE_WIDTH,
             zorder: float = 2) -> Line2D:
        """A polyline through ``(xs, ys)`` inches (waveforms, grid lines)."""
        ln = Line2D(xs, ys, color=color, lw=lw, zorder=zorder, transform=self.transform)
        self.fig.add_artist(ln)
        return ln

    def image(self, pixels: object, box: tuple[float, float, float, float], cmap: str | None = None) -> None:
        """Draw an image array (``[H, W]`` with ``cmap``, or ``[H, W, 3]``) into ``box`` = (x0, y0, x1, y1)."""
        im = BboxImage(TransformedBbox(Bbox.from_extents(*box), self.transform), cmap=cmap, interpolation="nearest",
                       origin="upper", zorder=2)
        im.set_data(pixels)
        self.fig.add_artist(im)

    def __getitem__(self, name: str) -> Node:
        if name not in self.nodes:
            raise KeyError(f"diagram {self.name!r} has no node {name!r}; nodes: {sorted(self.nodes)}")
        return self.nodes[name]

    # -- arrows -----------------------------------------------------------------------------------------
    def _resolve(self, end: End, toward: Point) -> tuple[Point, str]:
        if isinstance(end, str):
            n = self[end]
            return n.facing(toward), n.name
        if len(end) >= 2 and isinstance(end[0], str):
            n = self[end[0]]
            along = float(end[2]) if len(end) > 2 else 0.0  # type: ignore[misc]
            return n.at(str(end[1]), along), n.name
        return (float(end[0]), float(end[1])), ""  # type: ignore[arg-type]

    def _centre(self, end: End) -> Point:
        if isinstance(end, str):
            return self[end].centre
        if isinstance(end[0], str):
            n = self[end[0]]
            return n.at(str(end[1]), float(end[2]) if len(end) > 2 else 0.0)  # type: ignore[misc]
        return float(end[0]), float(end[1])  # type: ignore[arg-type]

    def _route(self, src: End, dst: End, route: str, via: Sequence[Point], mid: float | None
               ) -> tuple[list[Point], str, str]:
        cs, cd = self._centre(src), self._centre(dst)
        if route == "straight" or via:
            p0, a = self._resolve(src, via[0] if via else cd)
            p1, b = self._resolve(dst, via[-1] if via else cs)
            return [p0, *via, p1], a, b
        if route in ("hv", "vh"):
            corner = (cd[0], cs[1]) if route == "hv" else (cs[0], cd[1])
            p0, a = self._resolve(src, corner)
            p1, b = self._resolve(dst, corner)
            corner = (p1[0], p0[1]) if route == "hv" else (p0[0], p1[1])
            return [p0, corner, p1], a, b
        if route in ("hvh", "vhv"):
            if route == "hvh":
                m = (cs[0] + cd[0]) / 2 if mid is None else mid
                p0, a = self._resolve(src, (m, cs[1]))
                p1, b = self._resolve(dst, (m, cd[1]))
                return [p0, (m, p0[1]), (m, p1[1]), p1], a, b
            m = (cs[1] + cd[1]) / 2 if mid is None else mid
            p0, a = self._resolve(src, (cs[0], m))
            p1, b = self._resolve(dst, (cd[0], m))
            return [p0, (p0[0], m), (p1[0], m), p1], a, b
        raise ValueError(f"route must be straight, hv, vh, hvh or vhv, got {route!r}")

    def arrow(self, src: End, dst: End, *, label: str | None = None, route: str = "straight",
              via: Sequence[Point] = (), mid: float | None = None, head: str = "end", color: str = st.LINE,
              ls: str = "-", lw: float = st.LINE_WIDTH, label_side: str | None = None, label_at: float = 0.5,
              label_seg: int | None = None, mono: bool | None = None, label_size: float = st.SMALL) -> list[Point]:
        """An arrow from ``src`` to ``dst`` (node names, ``(name, side[, along])`` or points); returns its points.

        Args:
            label: text beside the arrow, e.g. a tensor shape ``"[B, D]"`` (monospace when it starts with "[").
            route: ``straight``, ``hv`` / ``vh`` (one elbow), ``hvh`` / ``vhv`` (two elbows at ``mid``).
            via: explicit waypoints (the route is then straight segments through them).
            head: ``end``, ``both`` or ``none``.
            label_side: ``left``/``right`` of a vertical segment, ``above``/``below`` a horizontal one.
            label_at: where along the labelled segment (0 = start, 1 = end).
            label_seg: which segment carries the label (default: the longest).
        """
        pts, a, b = self._route(src, dst, route, via, mid)
        style = {"end": HEAD, "both": ArrowStyle("<|-|>", head_length=0.45, head_width=0.22),
                 "none": ArrowStyle("-")}[head]
        self.patch(FancyArrowPatch(path=Path(pts), arrowstyle=style, mutation_scale=11, color=color, lw=lw,
                                          ls=ls, shrinkA=0, shrinkB=0, zorder=2, joinstyle="miter",
                                          capstyle="butt"))
        self.geometry.arrows.append((a, b, pts))
        if label:
            self._arrow_label(pts, label, label_side, label_at, label_seg,
                              label.startswith("[") if mono is None else mono, label_size)
        return pts

    def _arrow_label(self, pts: list[Point], label: str, side: str | None, at: float, seg: int | None,
                     mono: bool, size: float) -> Text:
        lengths = [math.dist(pts[i], pts[i + 1]) for i in range(len(pts) - 1)]
        i = lengths.index(max(lengths)) if seg is None else seg
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
        x, y = x0 + (x1 - x0) * at, y0 + (y1 - y0) * at
        vertical = abs(x1 - x0) < abs(y1 - y0)
        side = side or ("right" if vertical else "above")
        gap = 0.07
        place = {"right": ((x + gap, y), "left", "center"), "left": ((x - gap, y), "right", "center"),
                 "above": ((x, y + gap), "center", "bottom"), "below": ((x, y - gap), "center", "top")}
        if side not in place:
            raise ValueError(f"label_side must be left, right, above or below, got {side!r}")
        xy, ha, va = place[side]
        return self.text(xy, label, size=size, ha=ha, va=va, mono=mono)

    # -- groups, legends --------------------------------------------------------------------------------
    def extent(self, names: Iterable[str], pad: float = 0.0) -> tuple[float, float, float, float]:
        """The bounding box ``(x0, y0, x1, y1)`` of the named nodes, grown by ``pad``."""
        boxes = [self[n].bbox for n in names]
        return (min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad,
                max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad)

    def group(self, names: Iterable[str] | tuple[float, float, float, float], caption: str = "", *,
              pad: float = 0.12, caption_at: str = "top-left", kind_: str = "note", face: str | None = None,
              size: float = st.SMALL, color: str = st.MUTED) -> tuple[float, float, float, float]:
        """A dashed rounded frame around nodes (or a box ``(x0, y0, x1, y1)``), captioned; returns the frame."""
        if isinstance(names, tuple) and len(names) == 4 and not isinstance(names[0], str):
            x0, y0, x1, y1 = names  # type: ignore[misc]
        else:
            x0, y0, x1, y1 = self.extent(names, pad)  # type: ignore[arg-type]
        look = st.kind(kind_)
        self.patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.08",
                                         fc=face or "none", ec=look.edge, lw=1.0, ls=look.linestyle, zorder=1))
        if caption:
            spots = {"top-left": ((x0 + 0.06, y1 + 0.04), "left", "bottom"),
                     "top-right": ((x1 - 0.06, y1 + 0.04), "right", "bottom"),
                     "top": (((x0 + x1) / 2, y1 + 0.04), "center", "bottom"),
                     "bottom-left": ((x0 + 0.06, y0 - 0.04), "left", "top"),
                     "bottom": (((x0 + x1) / 2, y0 - 0.04), "center", "top"),
                     "bottom-right": ((x1 - 0.06, y0 - 0.04), "right", "top"),
                     "left": ((x0 - 0.06, (y0 + y1) / 2), "right", "center"),
                     "right": ((x1 + 0.06, (y0 + y1) / 2), "left", "center"),
                     "inside-top-left": ((x0 + 0.08, y1 - 0.06), "left", "top"),
                     "inside-top-right": ((x1 - 0.08, y1 - 0.06), "right", "top")}
            xy, ha, va = spots[caption_at]
            self.text(xy, caption, size=size, color=color, ha=ha, va=va)
        return x0, y0, x1, y1

    def legend(self, kinds: Sequence[str], xy: Point, *, gap: float = 0.22) -> float:
        """A row of swatches with words (``LEGEND_WORDS`` or the modality name) from ``xy`` (left, centre)."""
        x, y = xy
        for k in kinds:
            look = st.kind(k)
            self.patch(Rectangle((x, y - 0.08), 0.22, 0.16, fc=look.face, ec=look.edge, lw=1.0,
                                        ls=look.linestyle, hatch=look.hatch, zorder=3))
            word = st.LEGEND_WORDS.get(k, k)
            self.text((x + 0.29, y), word, ha="left", color=st.TEXT)
            x += 0.29 + self.measure(word, st.SMALL)[0] + gap
        return x

    def trim(self, margin: float = 0.12) -> None:
        """Fit the canvas to what is drawn plus ``margin`` inches (one inch stays one data unit).

        The result may be wider than ``MAX_WIDTH``; ``checks.layout_problems`` (and the tests) say so.
        """
        artists = [*self.fig.artists, *self.fig.texts]
        boxes = [a.get_window_extent(self._renderer) for a in artists if a.get_visible()]
        inv = self.transform.inverted()
        (x0, y0), (x1, y1) = inv.transform([(min(b.x0 for b in boxes), min(b.y0 for b in boxes)),
                                            (max(b.x1 for b in boxes), max(b.y1 for b in boxes))])
        x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
        self._shift.translate(-x0, -y0)
        self.fig.set_size_inches(x1 - x0, y1 - y0)
        self.width, self.height = x1 - x0, y1 - y0

    def finish(self, alt: str, trim: bool = True) -> Diagram:
        """The finished :class:`Diagram` with its alt text, trimmed to its content unless ``trim`` is False."""
        if trim:
            self.trim()
        return Diagram(self.fig, alt, self.name, self.geometry, self.transform)


__all__ = ["Canvas", "Node"]
