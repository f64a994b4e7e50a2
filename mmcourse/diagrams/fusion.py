"""Diagrams of chapter 09: early, intermediate and late fusion side by side, and each fusion module's forward.

``fusion_module(name)`` draws the module ``mmcourse.fusion.registry.build_fusion(name, ...)`` builds: every
module visits the modalities in sorted order (audio, image, text) and fills a missing one with zeros (or
masks it out of a softmax or of attention). This file draws concatenation, weighted and gated fusion;
``fusion_products.py`` the tensor fusions and ``fusion_attention.py`` the attention-based ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import TEXT

MODS = ("audio", "image", "text")  # sorted, as every fusion module visits them
SHORT = {"audio": "a", "image": "i", "text": "t", "video": "v"}


def inputs(c: Canvas, x: float, ys: Sequence[float], mods: Sequence[str] = MODS, tokens: bool = False) -> None:
    """One coloured box per modality, ``in_<m>``, labelled with its features' shape."""
    for m, y in zip(mods, ys):
        shape = f"[B, L_{SHORT[m]}, D_{SHORT[m]}]" if tokens else f"[B, D_{SHORT[m]}]"
        c.box(f"in_{m}", (x, y), f"{m}  {shape}", kind_=m, size=9, mono=True, w=1.75 if tokens else 1.45)


def fusion_stages() -> Diagram:
    """Early, intermediate and late fusion of image, text and audio, side by side."""
    c = Canvas(7.0, 4.9, "fusion_stages")
    mods = ("image", "text", "audio")
    panels = (("early", 1.1), ("intermediate", 3.42), ("late", 5.74))
    top = 4.1
    for stage, cx in panels:
        c.title((cx, top + 0.55), f"{stage} fusion")
        xs = [cx - 0.69, cx, cx + 0.69]
        for m, x in zip(mods, xs):
            c.box(f"{stage}_{m}", (x, top), m, kind_=m, w=0.66, size=9)
        if stage == "early":
            c.box("early_cat", (cx, top - 0.95), "concatenate inputs", kind_="function", w=2.0)
            for m, x in zip(mods, xs):
                c.arrow(f"{stage}_{m}", ("early_cat", "top", x - cx))
            c.box("early_net", (cx, top - 1.75), "one network", w=2.0)
            c.arrow("early_cat", "early_net")
            c.box("early_head", (cx, top - 2.55), "head", w=1.0)
            c.arrow("early_net", "early_head")
            last = "early_head"
        elif stage == "intermediate":
            for m, x in zip(mods, xs):
                c.box(f"mid_enc_{m}", (x, top - 0.95), "enc", w=0.66, size=9)
                c.arrow(f"{stage}_{m}", f"mid_enc_{m}")
            c.box("mid_fuse", (cx, top - 1.75), "fusion module", w=2.1)
            for m, x in zip(mods, xs):
                c.arrow(f"mid_enc_{m}", ("mid_fuse", "top", x - cx))
            c.box("mid_head", (cx, top - 2.55), "head", w=1.0)
            c.arrow("mid_fuse", "mid_head")
            last = "mid_head"
        else:
            for m, x in zip(mods, xs):
                c.box(f"late_enc_{m}", (x, top - 0.95), "enc", w=0.66, size=9)
                c.box(f"late_head_{m}", (x, top - 1.75), "head", w=0.66, size=9)
                c.arrow(f"{stage}_{m}", f"late_enc_{m}")
                c.arrow(f"late_enc_{m}", f"late_head_{m}")
            c.box("late_mean", (cx, top - 2.55), "mean of logits", kind_="function", w=2.1)
            for m, x in zip(mods, xs):
                c.arrow(f"late_head_{m}", ("late_mean", "top", x - cx))
            last = "late_mean"
        c.box(f"{stage}_y", (cx, top - 3.35), "logits", kind_="data")
        c.arrow(last, f"{stage}_y")
    c.text((1.1, 0.25), "raw inputs meet first:\none model learns all\ninteractions", va="top")
    c.text((3.42, 0.25), "encoders first, then\nfeatures meet: the\ncourse's MultimodalModel", va="top")
    c.text((5.74, 0.25), "each modality decides;\nonly the decisions meet\n(LateFusionModel; or the\n"
           "mean of probabilities)", va="top")
    alt = ("Three places to fuse image, text and audio: early fusion concatenates the raw inputs and trains one "
           "network; intermediate fusion encodes each modality separately and fuses the features in a fusion "
           "module before one head; late fusion gives each modality its own encoder and head and averages "
           "their logits.")
    return c.finish(alt)


def concat_fusion() -> Diagram:
    """``ConcatFusion``: features in sorted order, missing ones as zeros, concatenated: ``[B, sum D_m]``."""
    c = Canvas(6.2, 2.6, "fusion_concat")
    ys = (2.0, 1.3, 0.6)
    inputs(c, 0.85, ys)
    c.box("cat", (3.0, 1.3), "concatenate\n(missing → zeros)", kind_="function", h=1.9)
    for m in MODS:
        c.arrow(f"in_{m}", ("cat", "left", c[f"in_{m}"].y - 1.3))
    x0 = 4.1
    widths = (0.45, 0.75, 0.6)
    for m, w in zip(MODS, widths):
        c.box(f"seg_{m}", (x0 + w / 2, 1.3), SHORT[m], kind_=m, w=w, size=9)
        x0 += w
    c.arrow("cat", "seg_audio")
    c.text((4.1 + sum(widths) / 2, 0.95), "[B, D_a + D_i + D_t]", va="top", mono=True)
    alt = ("Concatenation fusion: the audio, image and text feature vectors, in sorted order and with a missing "
           "modality replaced by zeros, are joined end to end into one vector of width D_a + D_i + D_t.")
    return c.finish(alt)


def weighted_fusion() -> Diagram:
    """``WeightedFusion``: project each modality to ``dim``, weigh by ``softmax(w)``, sum."""
    c = Canvas(6.6, 3.3, "fusion_weighted")
    ys = (2.5, 1.6, 0.7)
    inputs(c, 0.8, ys)
    c.text((3.9, 3.35), "$a = \\mathrm{softmax}(w)$: one learned weight per modality,\n"
           "renormalised over the modalities present", va="bottom", color=TEXT)
    for m, y in zip(MODS, ys):
        c.box(f"p_{m}", (2.55, y), f"Linear $P_{SHORT[m]}$  → dim")
        c.arrow(f"in_{m}", f"p_{m}")
        c.op(f"mul_{m}", (3.9, y), "×")
        c.arrow(f"p_{m}", f"mul_{m}")
        c.box(f"a_{m}", (3.9, y + 0.5), f"$a_{SHORT[m]}$", w=0.42, h=0.28, size=9)
        c.arrow(f"a_{m}", f"mul_{m}")
    c.op("sum", (4.9, 1.6), "Σ", size=10)
    for m in MODS:
        c.arrow(f"mul_{m}", "sum")
    c.box("out", (5.95, 1.6), "[B, dim]", kind_="data", mono=True, size=9)
    c.arrow("sum", "out")
    alt = ("Weighted fusion: each modality's features go through their own linear projection to a common width, "
           "are multiplied by a learned weight a_m = softmax(w)_m (renormalised over the modalities present) and "
           "summed into one vector of width dim.")
    return c.finish(alt)


def gated_fusion() -> Diagram:
    """``GatedFusion`` (a GMU): ``h_m = tanh(W_m x_m)``, gates ``g = softmax_m(U [x_a; x_i; x_t])``, sum ``g ⊙ h``."""
    c = Canvas(6.9, 4.6, "fusion_gated")
    ys = (3.75, 2.7, 1.65)
    inputs(c, 0.8, ys)
    for m, y in zip(MODS, ys):
        c.box(f"w_{m}", (2.45, y), f"Linear $W_{SHORT[m]}$", w=1.0)
        c.box(f"tanh_{m}", (3.55, y), "tanh", kind_="function")
        c.arrow(f"in_{m}", f"w_{m}")
        c.arrow(f"w_{m}", f"tanh_{m}")
        c.op(f"mul_{m}", (4.55, y), "×")
        c.arrow(f"tanh_{m}", f"mul_{m}", label=f"$h_{SHORT[m]}$", label_side="above")
        c.box(f"g_{m}", (4.55, y - 0.5), f"$g_{SHORT[m]}$", kind_="data", w=0.42, h=0.28, size=9)
        c.arrow(f"g_{m}", f"mul_{m}")
    c.op("sum", (5.55, ys[1]), "Σ", size=10)
    for m in MODS:
        c.arrow(f"mul_{m}", "sum")
    c.box("out", (6.4, ys[1]), "[B, dim]", kind_="data", mono=True, size=9)
    c.arrow("sum", "out")
    yg = 0.45
    c.box("cat", (2.45, yg), "concat all x", kind_="function", w=1.0)
    bus = 1.75  # every input also feeds the gate: taps on a vertical line down to the concatenation
    for m, y in zip(MODS, ys):
        c.point(f"tap_{m}", (bus, y), dot=True)
    c.arrow("tap_audio", "cat", route="vh")
    c.box("u", (3.65, yg), "Linear U", w=0.9)
    c.arrow("cat", "u")
    c.box("soft", (4.95, yg), "softmax over\nmodalities", kind_="function", w=1.05)
    c.arrow("u", "soft")
    c.box("g", (6.25, yg), "$[g_a, g_i, g_t]$", kind_="data", size=9)
    c.arrow("soft", "g")
    c.text((3.9, yg - 0.42), "gates per sample and per feature, [B, M, dim]; a missing modality's score is −∞",
           va="top")
    alt = ("Gated fusion (a gated multimodal unit): each modality's features become h_m = tanh(W_m x_m); all "
           "features, concatenated, go through a linear layer U and a softmax over the modalities to give gates "
           "g_m for every sample and feature; the output is the sum of g_m times h_m.")
    return c.finish(alt)
