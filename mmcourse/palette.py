"""The course's colour-blind-safe palette (Okabe & Ito, 2008), shared by every plot.

A module of its own so that low-level code (the engine's history plots) and the analysis helpers can both
use it without importing each other. Matplotlib's default ``tab10`` is not colour-blind safe.
"""

OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
# Order for line/bar series: the strongest contrasts first; yellow (weak on white) late.
PALETTE: list[str] = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple",
                                             "sky_blue", "black", "yellow")]
