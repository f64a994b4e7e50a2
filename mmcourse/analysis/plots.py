"""Plotting helpers every chapter may use: the colour-blind-safe Okabe–Ito palette and a few small figures.

``PALETTE`` is the Okabe–Ito set (Okabe & Ito, 2008), distinguishable under the common colour-vision
deficiencies (matplotlib's default ``tab10`` is not). ``use_palette()`` makes it matplotlib's default cycle.
Chapters 1–3 use it first; every later chapter's plots use it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmcourse.palette import OKABE_ITO, PALETTE  # noqa: F401  (re-exported)

# Sequential colour map for images/heatmaps that stays readable for colour-blind readers (and in grey).
SEQUENTIAL_CMAP = "cividis"
DIVERGING_CMAP = "PuOr"


def color(i: int) -> str:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def use_palette() -> None:
    """Make ``PALETTE`` matplotlib's default colour cycle and ``cividis`` its default colour map."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)
    mpl.rcParams["image.cmap"] = SEQUENTIAL_CMAP


def subplots(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float] = (4.0, 3.0), **kw: Any) -> tuple:
    """``plt.subplots`` with a figure size per panel and the course palette; returns ``(fig, axes)``."""
    import matplotlib.pyplot as plt

    use_palette()
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), **kw)


def line_plot(series: Mapping[str, Sequence[float]], *, x: Sequence[float] | None = None, xlabel: str = "",
              ylabel: str = "", title: str = "", logy: bool = False, ax: Any = None) -> Any:
    """One line per named series (distinct colour and marker, so it also reads in grey); returns the axes."""
    if ax is None:
        _, ax = subplots()
    markers = "osD^v<>p"
    for i, (name, ys) in enumerate(series.items()):
        xs = list(x) if x is not None else list(range(1, len(ys) + 1))
        ax.plot(xs, list(ys), marker=markers[i % len(markers)], markersize=3, color=color(i), label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(frameon=False)
    return ax


def image_grid(images: Sequence[Any], titles: Sequence[str] | None = None, *, ncols: int = 8,
               cmap: str = "gray_r", size: float = 1.2) -> Any:
    """Show a grid of 2-D images (tensors or arrays ``[H, W]``, or ``[3, H, W]`` in [0, 1]); returns the figure."""
    import matplotlib.pyplot as plt

    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        img = img.detach().cpu().numpy() if hasattr(img, "detach") else img
        if img.ndim == 3:
            img = img.transpose(1, 2, 0)
        ax.imshow(img, cmap=None if img.ndim == 3 else cmap)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return fig
