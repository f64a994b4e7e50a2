"""Diagrams of chapters 04 and 05: batch normalisation in training and evaluation, and the residual block.

``residual_block`` draws ``mmcourse.layers.residual.BasicBlock`` (post-activation: ``relu(F(x) + S(x))``
with ``F`` = conv–BN–ReLU–conv–BN and ``S`` the identity or a 1×1 projection) and the pre-activation block
of He et al. (2016b) that chapter 05 writes itself (BN–ReLU–conv twice, identity shortcut, no last ReLU).
"""

from __future__ import annotations

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import TEXT

STEP = 0.56  # vertical distance between stacked boxes (inches)


def _stack(c: Canvas, x: float, top: float, items: list[tuple[str, str, str]], w: float) -> float:
    """Boxes ``(name, label, kind)`` down a column from ``top``, each joined to the next; returns the last y."""
    y = top
    for i, (name, label, kind_) in enumerate(items):
        if kind_ == "op":
            c.op(name, (x, y), label)
        else:
            c.box(name, (x, y), label, kind_=kind_, w=w)
        if i:
            c.arrow(items[i - 1][0], name)
        y -= STEP
    return y + STEP


def residual_block(pre_activation: bool = False, projection: bool | None = None) -> Diagram:
    """A residual block, top to bottom, with the shapes of its tensors.

    Args:
        pre_activation: False draws ``BasicBlock``: ``relu(F(x) + S(x))``, ``F`` = conv3×3 (stride s)–BN–
            ReLU–conv3×3–BN. True draws the pre-activation block: ``x + F(x)`` with ``F`` = BN–ReLU–conv3×3–
            BN–ReLU–conv3×3 and nothing after the addition.
        projection: the shortcut ``S`` of the post-activation block: True a 1×1 conv (stride s) + BN, False
            the identity, None (default) the projection drawn dashed, "only when the shape changes".
    """
    c = Canvas(4.4, 6.2, "residual_block_pre" if pre_activation else "residual_block")
    x, xs = 1.75, 3.55
    top = 5.45
    c.title((2.2, 5.95), "pre-activation residual block" if pre_activation else "residual block (BasicBlock)")
    c.box("x", (x, top), "x", kind_="data", w=0.6)
    if pre_activation:
        branch = [("bn1", "BatchNorm", "learned"), ("relu1", "ReLU", "function"),
                  ("conv1", "conv 3×3", "learned"), ("bn2", "BatchNorm", "learned"),
                  ("relu2", "ReLU", "function"), ("conv2", "conv 3×3", "learned")]
    else:
        branch = [("conv1", "conv 3×3, stride s", "learned"), ("bn1", "BatchNorm", "learned"),
                  ("relu1", "ReLU", "function"), ("conv2", "conv 3×3", "learned"), ("bn2", "BatchNorm", "learned")]
    split = top - 0.45
    c.point("split", (x, split), dot=True)
    y_last = _stack(c, x, split - 0.42, branch, w=1.7)
    c.arrow("split", branch[0][0])
    add_y = y_last - STEP
    c.op("add", (x, add_y), "+")
    c.arrow(branch[-1][0], "add")
    c.group([n for n, _, _ in branch], "F(x)", pad=0.1, caption_at="left", size=10, color="#1A1A1A")
    if pre_activation or projection is False:
        c.arrow("split", "add", route="hvh", mid=xs, label="identity", mono=False, label_side="right")
        s_label = "S(x) = x"
    else:
        c.box("proj", (xs, (split + add_y) / 2 + 0.3), "conv 1×1,\nstride s", kind_="learned", w=1.05)
        c.box("proj_bn", (xs, (split + add_y) / 2 - 0.4), "BatchNorm", kind_="learned", w=1.05)
        if projection is None:
            c.group(["proj", "proj_bn"], pad=0.08)
            c.text((xs, add_y - STEP), "dashed: only when\nthe shape changes")
        c.arrow("split", "proj", route="hv")
        c.arrow("proj", "proj_bn")
        c.arrow("proj_bn", "add", route="vh")
        s_label = "S(x)"
    c.text((xs, split + 0.18), s_label, color="#1A1A1A", size=10)
    c.arrow("x", "split", label="[B, C, H, W]", label_side="left", head="none")
    if pre_activation:
        c.box("y", (x, add_y - STEP - 0.05), "y = x + F(x)", kind_="data")
        c.arrow("add", "y", label="[B, C, H, W]", label_side="left")
    else:
        c.box("relu_out", (x, add_y - STEP), "ReLU", kind_="function", w=1.7)
        c.arrow("add", "relu_out")
        c.box("y", (x, add_y - 2 * STEP), "y = ReLU(F(x) + S(x))", kind_="data")
        c.arrow("relu_out", "y", label="[B, C′, H/s, W/s]", label_side="left")
    if pre_activation:
        alt = ("A pre-activation residual block: the input x goes through BatchNorm, ReLU, a 3×3 convolution, "
               "BatchNorm, ReLU and a second 3×3 convolution, and is added back unchanged: y = x + F(x), with no "
               "activation after the addition.")
    else:
        alt = ("A residual block: the branch F is a 3×3 convolution with stride s, BatchNorm, ReLU, a second 3×3 "
               "convolution and BatchNorm; the shortcut S is the identity, or a 1×1 convolution with stride s and "
               "BatchNorm when the shape changes; the output is ReLU(F(x) + S(x)).")
    return c.finish(alt)


def batchnorm() -> Diagram:
    """Batch normalisation in training (batch statistics, running averages updated) and in evaluation (the
    running averages), per channel, as ``nn.BatchNorm2d`` computes it."""
    c = Canvas(6.8, 5.0, "batchnorm")
    xt, xe, top = 1.35, 5.55, 4.45
    for x, title in ((xt, "model.train()"), (xe, "model.eval()")):
        c.title((x, top + 0.5), title)
        c.box(f"x_{x}", (x, top), "x  [B, C, H, W]", kind_="data", mono=True, size=9)
    c.box("stats", (xt, top - 0.85), "per channel, over B, H, W:\n$\\mu_B$ = mean,  $\\sigma_B^2$ = variance",
          kind_="function")
    c.box("norm_t", (xt, top - 1.75), "$\\hat x = (x - \\mu_B) / \\sqrt{\\sigma_B^2 + \\epsilon}$",
          kind_="function")
    c.box("norm_e", (xe, top - 1.75), "$\\hat x = (x - \\mu_{run}) / \\sqrt{\\sigma_{run}^2 + \\epsilon}$",
          kind_="function")
    for x in (xt, xe):
        c.box(f"affine_{x}", (x, top - 2.6), "$y = \\gamma \\hat x + \\beta$   (γ, β learned, [C])")
        c.box(f"y_{x}", (x, top - 3.45), "y  [B, C, H, W]", kind_="data", mono=True, size=9)
    c.arrow(f"x_{xt}", "stats")
    c.arrow("stats", "norm_t")
    c.arrow(f"x_{xe}", "norm_e")
    for x, n in ((xt, "norm_t"), (xe, "norm_e")):
        c.arrow(n, f"affine_{x}")
        c.arrow(f"affine_{x}", f"y_{x}")
    xm = (xt + xe) / 2 + 0.1
    c.box("running", (xm, top - 1.75), "running_mean,\nrunning_var\n(buffers, not learned)", kind_="data", size=9.5)
    c.arrow("stats", "running", route="hv", label="update", label_side="above", mono=False)
    c.arrow("running", "norm_e")
    c.text((xm, top - 2.35), "$r \\leftarrow (1 - m)\\,r + m\\,\\mu_B$\nm = momentum = 0.1;\n"
           "var: likewise, unbiased", va="top", color=TEXT)
    c.text((xt, top - 3.95), "each sample's output depends on\nthe rest of its batch", va="top")
    c.text((xe, top - 3.95), "each sample alone: the same input\nalways gives the same output", va="top")
    alt = ("Batch normalisation in training and in evaluation: in training each channel is normalised with the mean "
           "and variance of the current batch (over batch, height and width), which also update running averages; "
           "in evaluation the running averages are used instead; both then scale by a learned gamma and shift by a "
           "learned beta.")
    return c.finish(alt)
