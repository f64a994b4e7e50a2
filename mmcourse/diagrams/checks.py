"""Layout checks for a diagram: what ``tests/test_diagrams.py`` and the gallery assert about every drawing.

``layout_problems(diagram)`` returns readable complaints (empty when the diagram is clean): text outside the
figure or smaller than ``MIN_FONT``, two labels on top of each other, a label sticking out of its box, an
arrow running through a box it does not join or through a label, a figure wider than the book column, a
background that is not opaque white. Chapter authors who add a diagram run it (``python -m mmcourse.diagrams``
does).
"""

from __future__ import annotations

from collections.abc import Iterator

from matplotlib.text import Text
from matplotlib.transforms import Bbox

from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import BACKGROUND, MAX_WIDTH, MIN_FONT

TOL = 1.0  # pixels of overlap forgiven (anti-aliasing)


def _segments(points: list[tuple[float, float]]) -> Iterator[tuple[tuple[float, float], tuple[float, float]]]:
    yield from zip(points[:-1], points[1:])


def segment_hits_box(p: tuple[float, float], q: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether the segment ``p``–``q`` passes through the open rectangle ``box`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return False
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for d, lo, hi, s in ((dx, x0, x1, p[0]), (dy, y0, y1, p[1])):  # Liang–Barsky clipping
        if abs(d) < 1e-12:
            if not lo < s < hi:
                return False
            continue
        a, b = (lo - s) / d, (hi - s) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 >= t1:
            return False
    return True


def _text_boxes(d: Diagram) -> list[tuple[Text, Bbox, float]]:
    renderer = d.fig.canvas.get_renderer()
    out = []
    for t in d.fig.texts:
        if t.get_visible() and t.get_text().strip():
            out.append((t, t.get_window_extent(renderer), float(t.get_fontsize())))
    return out


def layout_problems(d: Diagram) -> list[str]:
    """Everything wrong with ``d``'s layout, as sentences (an empty list for a clean diagram)."""
    problems: list[str] = []
    w, h = d.size
    if w > MAX_WIDTH + 0.02:
        problems.append(f"{w:.2f} in wide; the book column holds {MAX_WIDTH} in")
    face = d.fig.get_facecolor()
    if face[3] < 1 or d.fig.patch.get_alpha() not in (None, 1, 1.0) or tuple(face[:3]) != (1.0, 1.0, 1.0):
        problems.append(f"background {face} is not opaque {BACKGROUND}")
    dpi = d.fig.dpi
    page = Bbox.from_bounds(0, 0, w * dpi, h * dpi)
    texts = _text_boxes(d)
    for t, bb, size in texts:
        s = t.get_text()
        if size < MIN_FONT:
            problems.append(f"text {s!r} is {size} pt, smaller than {MIN_FONT} pt")
        if bb.x0 < page.x0 - TOL or bb.y0 < page.y0 - TOL or bb.x1 > page.x1 + TOL or bb.y1 > page.y1 + TOL:
            problems.append(f"text {s!r} leaves the figure")
    for i, (t1, b1, _) in enumerate(texts):
        for t2, b2, _ in texts[i + 1:]:
            if min(b1.x1, b2.x1) - max(b1.x0, b2.x0) > TOL and min(b1.y1, b2.y1) - max(b1.y0, b2.y0) > TOL:
                problems.append(f"texts {t1.get_text()!r} and {t2.get_text()!r} overlap")
    to_px = d.transform
    renderer = d.fig.canvas.get_renderer()
    for t, name in d.geometry.fitted:
        x0, y0, x1, y1 = d.geometry.boxes[name]
        (px0, py0), (px1, py1) = to_px.transform([(x0, y0), (x1, y1)])
        bb = t.get_window_extent(renderer)
        if bb.x0 < px0 - TOL or bb.x1 > px1 + TOL or bb.y0 < py0 - TOL or bb.y1 > py1 + TOL:
            problems.append(f"label {t.get_text()!r} sticks out of its box {name!r}")
    inset = 0.03  # inches: an arrow may touch a box's border, not run through it
    inside = {id(t) for t, _ in d.geometry.fitted}
    free = [(t.get_text(), bb) for t, bb, _ in texts if id(t) not in inside]
    inv = d.transform.inverted()
    for s, bb in free:
        (tx0, ty0), (tx1, ty1) = inv.transform([(bb.x0 + TOL, bb.y0 + TOL), (bb.x1 - TOL, bb.y1 - TOL)])
        for name, (x0, y0, x1, y1) in d.geometry.boxes.items():
            if min(tx1, x1) > max(tx0, x0) and min(ty1, y1) > max(ty0, y0):
                problems.append(f"text {s!r} overlaps box {name!r}")
    for a, b, pts in d.geometry.arrows:
        for name, (x0, y0, x1, y1) in d.geometry.boxes.items():
            if name in (a, b):
                continue
            shrunk = (x0 + inset, y0 + inset, x1 - inset, y1 - inset)
            if any(segment_hits_box(p, q, shrunk) for p, q in _segments(pts)):
                problems.append(f"arrow {a or pts[0]} → {b or pts[-1]} runs through box {name!r}")
        for s, bb in free:
            (tx0, ty0), (tx1, ty1) = inv.transform([(bb.x0 + 2, bb.y0 + 2), (bb.x1 - 2, bb.y1 - 2)])
            if any(segment_hits_box(p, q, (tx0, ty0, tx1, ty1)) for p, q in _segments(pts)):
                problems.append(f"arrow {a or pts[0]} → {b or pts[-1]} runs through the text {s!r}")
    return problems
