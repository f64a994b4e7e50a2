"""The diagrams' one style: font sizes, line widths and the Okabe–Ito palette with a meaning per colour.

Every diagram of the book (chapters 04–13) is drawn with these values, so a colour means the same thing in
every chapter:

- a modality has its colour: image blue, text orange, audio bluish green, video reddish purple;
- a learned layer (it has parameters: conv, linear, norm, attention) is pale yellow;
- a parameter-free function (ReLU, softmax, pooling, STFT) is light grey;
- an operation on tensors (⊕ add, ⊗ multiply, σ …) is a small white circle;
- a loss is pale vermillion; a frozen (not trained) layer is grey and hatched;
- a piece of the training engine (autocast, compile, DDP, checkpoints) has a dashed border.

Text is always near-black on a light fill and every figure has an opaque white background, so a diagram
stays readable when the book is shown in its dark theme.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmcourse.palette import OKABE_ITO

BACKGROUND = "#FFFFFF"
TEXT = "#1A1A1A"
MUTED = "#4D4D4D"  # shapes on arrows, captions (contrast 8:1 on white)
LINE = "#262626"

FONT = 10.0  # labels inside boxes
SMALL = 9.0  # tensor shapes, captions: the smallest text in any diagram
TITLE = 11.0  # panel titles
MIN_FONT = SMALL
MAX_WIDTH = 7.0  # inches: the book's text column
LINE_WIDTH = 1.2
BOX_HEIGHT = 0.36  # inches, one line of text
PAD_X = 0.12  # inches of padding left and right of a label inside a box
SHAPE_FONT = "DejaVu Sans Mono"

MODALITY_COLOURS: dict[str, str] = {
    "image": OKABE_ITO["blue"],
    "text": OKABE_ITO["orange"],
    "audio": OKABE_ITO["bluish_green"],
    "video": OKABE_ITO["reddish_purple"],
}


def tint(colour: str, amount: float) -> str:
    """``colour`` mixed with white: ``amount`` 1 is the colour itself, 0 is white."""
    c = colour.lstrip("#")
    rgb = [int(c[i:i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(255 - (255 - v) * amount) for v in rgb]
    return "#" + "".join(f"{v:02X}" for v in mixed)


def shade(colour: str, amount: float) -> str:
    """``colour`` mixed with black: ``amount`` 0 keeps it, 1 is black (for edges that must stand out)."""
    c = colour.lstrip("#")
    rgb = [int(c[i:i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(v * (1 - amount)):02X}" for v in rgb)


@dataclass(frozen=True)
class Kind:
    """How a box of one kind looks: fill, edge colour, edge style and hatch."""

    face: str
    edge: str
    linestyle: str = "-"
    hatch: str | None = None


KINDS: dict[str, Kind] = {
    "data": Kind("#FFFFFF", LINE),
    "learned": Kind(tint(OKABE_ITO["yellow"], 0.35), shade(OKABE_ITO["yellow"], 0.45)),
    "function": Kind("#ECECEC", "#6B6B6B"),
    "op": Kind("#FFFFFF", LINE),
    "loss": Kind(tint(OKABE_ITO["vermillion"], 0.25), OKABE_ITO["vermillion"]),
    "frozen": Kind("#DCDCDC", "#6B6B6B", hatch="////"),
    "engine": Kind("#F5F5F5", LINE, linestyle="--"),
    "note": Kind("#FFFFFF", "#9A9A9A", linestyle="--"),
}
for _m, _c in MODALITY_COLOURS.items():
    KINDS[_m] = Kind(tint(_c, 0.25), shade(_c, 0.1))

LEGEND_WORDS: dict[str, str] = {
    "learned": "learned layer",
    "function": "fixed function",
    "op": "operation",
    "loss": "loss",
    "frozen": "frozen (not trained)",
    "engine": "training engine",
    "data": "tensor",
}


def kind(name: str) -> Kind:
    """The look of box kind ``name`` (one of ``KINDS``); a clear error for an unknown kind."""
    if name not in KINDS:
        raise ValueError(f"unknown box kind {name!r}; use one of {sorted(KINDS)}")
    return KINDS[name]
