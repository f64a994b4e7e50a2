"""Diagrams of chapter 09's multiplicative fusions: tensor fusion (Zadeh et al. 2017) and its low-rank
version (Liu et al. 2018), as ``mmcourse.fusion.tensor`` computes them.

Tensor fusion appends a 1 to every modality's features and takes the outer product (with its 1s it holds every
unimodal feature and every product across modalities); low-rank fusion gets the same linear map of that
product from ``M · R`` small matrix products, never building the product itself.
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.fusion import MODS, SHORT, inputs
from mmcourse.diagrams.style import LINE, MODALITY_COLOURS, TEXT, tint


def _append_one(c: Canvas, ys: tuple[float, ...], x: float) -> None:
    for m, y in zip(MODS, ys):
        c.box(f"one_{m}", (x, y), f"$z_{SHORT[m]} = [x_{SHORT[m]}; 1]$", kind_="function", w=1.3)
        c.arrow(f"in_{m}", f"one_{m}")


def _outer_picture(c: Canvas, x0: float, y0: float, cell: float = 0.2, n: int = 4) -> None:
    """[x_a; 1] ⊗ [x_i; 1] for two modalities: products inside, each x alone in the row and column of the 1s."""
    ca, ci = MODALITY_COLOURS["audio"], MODALITY_COLOURS["image"]
    for r in range(n + 1):
        for k in range(n + 1):
            last_r, last_k = r == n, k == n
            if last_r and last_k:
                face = "#FFFFFF"
            elif last_r:
                face = tint(ci, 0.35)
            elif last_k:
                face = tint(ca, 0.35)
            else:
                face = tint("#808080", 0.35)
            c.patch(Rectangle((x0 + k * cell, y0 + (n - r) * cell), cell, cell, fc=face, ec=LINE, lw=0.6,
                                     zorder=3))
    c.text((x0 + n * cell + cell / 2, y0 + cell / 2), "1", color=TEXT)
    for r in range(n + 1):
        c.patch(Rectangle((x0 - 0.35, y0 + (n - r) * cell), cell, cell, lw=0.6, ec=LINE, zorder=3,
                                 fc="#FFFFFF" if r == n else tint(ca, 0.35)))
    for k in range(n + 1):
        c.patch(Rectangle((x0 + k * cell, y0 + (n + 1) * cell + 0.15), cell, cell, lw=0.6, ec=LINE,
                                 zorder=3, fc="#FFFFFF" if k == n else tint(ci, 0.35)))
    c.text((x0 - 0.25, y0 + (n + 1) * cell + 0.25), "⊗", size=12, color=TEXT)


def tensor_fusion() -> Diagram:
    """``TensorFusion``: ``vec([x_a; 1] ⊗ [x_i; 1] ⊗ [x_t; 1])`` (``prod(D_m + 1)`` wide), then a linear map."""
    c = Canvas(7.0, 4.3, "fusion_tensor")
    ys = (3.6, 2.8, 2.0)
    inputs(c, 0.8, ys)
    _append_one(c, ys, 2.5)
    c.op("outer", (3.75, ys[1]), "⊗", r=0.2, size=14)
    for m in MODS:
        c.arrow(f"one_{m}", "outer")
    c.box("flat", (4.8, ys[1]), "flatten", kind_="function")
    c.arrow("outer", "flat")
    c.box("lin", (6.1, ys[1]), "Linear → out", w=1.15)
    c.arrow("flat", "lin")
    c.text((5.45, ys[1] - 0.3), "[B, Π(D_m+1)]", va="top", mono=True)
    c.text((6.1, ys[1] + 0.3), "(optional)", va="bottom")
    _outer_picture(c, 0.9, 0.05)
    c.text((2.3, 0.95), "two modalities: [x_a; 1] ⊗ [x_i; 1]\n"
           "grey: every product $x_a^j x_i^k$\ncolumn of the 1: $x_a$ itself\nrow of the 1: $x_i$ itself\n"
           "corner: 1 (a bias)", ha="left", color=TEXT)
    c.text((5.9, 1.45), "Π(D_m+1) numbers: keep\nthe D_m small, or go\nlow-rank",
           va="top")
    alt = ("Tensor fusion: a 1 is appended to each modality's features, the outer product of the three vectors "
           "is flattened into a vector of size (D_a+1)(D_i+1)(D_t+1), and a linear layer maps it to the output; "
           "a two-modality picture shows that the product holds every cross-modal product of features plus, "
           "thanks to the 1s, each modality's own features.")
    return c.finish(alt)


def low_rank_tensor_fusion() -> Diagram:
    """``LowRankTensorFusion``: ``sum_r prod_m ([x_m; 1] · F_m[r]) + b`` without building the outer product."""
    c = Canvas(7.0, 3.6, "fusion_low_rank_tensor")
    ys = (2.9, 2.05, 1.2)
    inputs(c, 0.8, ys)
    _append_one(c, ys, 2.5)
    for m, y in zip(MODS, ys):
        c.box(f"f_{m}", (3.95, y), f"$z_{SHORT[m]} \\cdot F_{SHORT[m]}$", w=0.95)
        c.arrow(f"one_{m}", f"f_{m}")
    c.op("prod", (5.0, ys[1]), "×")
    for m in MODS:
        c.arrow(f"f_{m}", "prod")
    c.text((4.45, ys[0] + 0.33), "[B, R, out] each", mono=True)
    c.box("sum", (5.95, ys[1]), "Σ over R, + b", kind_="function")
    c.arrow("prod", "sum")
    c.box("out", (5.95, ys[2]), "[B, out]", kind_="data", mono=True, size=9)
    c.arrow("sum", "out")
    c.text((3.5, 0.55), "$F_m$: learned [R, D_m+1, out]; the product is elementwise across the modalities.\n"
           "Equal to tensor fusion's linear layer with the rank-R weight $W = \\Sigma_r\\, f_a^r \\otimes f_i^r "
           "\\otimes f_t^r$:\nM·R small products instead of one of size Π(D_m+1).", va="top", color=TEXT)
    alt = ("Low-rank tensor fusion: each modality's features with a 1 appended are multiplied by their own learned "
           "factor F_m of shape [R, D_m+1, out]; the three results are multiplied elementwise, summed over the "
           "R ranks and a bias is added, which equals tensor fusion with a rank-R weight without ever building "
           "the outer product.")
    return c.finish(alt)
