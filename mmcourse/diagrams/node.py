"""``Node``: a box or circle of a diagram, with the points on its border that arrows start from and end at.

Used by ``mmcourse.diagrams.core.Canvas`` (chapters 04–13's diagrams). Coordinates are inches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Point = tuple[float, float]
# an arrow end: a node's name, (name, side) or (name, side, offset along the side), or a point
End = str | tuple[str, str] | tuple[str, str, float] | Point

SIDES: dict[str, Point] = {"top": (0.0, 1.0), "bottom": (0.0, -1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


@dataclass(frozen=True)
class Node:
    """A node centred at ``(x, y)``, ``w`` × ``h`` inches; ``circle`` nodes have diameter ``w``."""

    name: str
    x: float
    y: float
    w: float
    h: float
    circle: bool = False

    @property
    def centre(self) -> Point:
        return self.x, self.y

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)``."""
        return self.x - self.w / 2, self.y - self.h / 2, self.x + self.w / 2, self.y + self.h / 2

    @property
    def top(self) -> float:
        return self.y + self.h / 2

    @property
    def bottom(self) -> float:
        return self.y - self.h / 2

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w / 2

    def at(self, side: str, along: float = 0.0) -> Point:
        """The point on side ``top``/``bottom``/``left``/``right``, moved ``along`` inches along that side."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {sorted(SIDES)}, got {side!r}")
        dx, dy = SIDES[side]
        half = (self.h if dx else self.w) / 2
        if abs(along) > half + 1e-9:
            raise ValueError(f"node {self.name!r}: a point {along:+.2f} in along its {side} side is off the side "
                             f"(half its length is {half:.2f} in)")
        if self.circle:
            r = self.w / 2
            if along:  # a point on the circle, ``along`` off the axis of that side
                a = math.asin(max(-1.0, min(1.0, along / r))) if r else 0.0
                base = math.atan2(dy, dx)
                ang = base - a if side in ("top", "left") else base + a
                return self.x + r * math.cos(ang), self.y + r * math.sin(ang)
            return self.x + dx * r, self.y + dy * r
        if dx:
            return self.x + dx * self.w / 2, self.y + along
        return self.x + along, self.y + dy * self.h / 2

    def facing(self, p: Point) -> Point:
        """Where an arrow towards (or from) ``p`` leaves this node: a side's middle, or the circle's edge."""
        dx, dy = p[0] - self.x, p[1] - self.y
        if self.circle:
            d = math.hypot(dx, dy) or 1.0
            r = self.w / 2
            return self.x + r * dx / d, self.y + r * dy / d
        if abs(dx) * self.h >= abs(dy) * self.w:  # leaves through the left or right side
            return self.at("right" if dx > 0 else "left")
        return self.at("top" if dy > 0 else "bottom")
