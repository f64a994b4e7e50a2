"""Diagrams of chapter 09's attention-based fusions: the modality Transformer (one token per modality plus a
[FUSE] token) and MulT-style cross-attention, as ``mmcourse.fusion.transformer`` and ``cross_attention``
compute them.
"""

from __future__ import annotations

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.fusion import MODS, SHORT, inputs


def transformer_fusion() -> Diagram:
    """``TransformerFusion``: project each modality to a token, add its modality embedding, prepend [FUSE],
    run Transformer blocks, and read out [FUSE] and every modality's token (``readout="all"``)."""
    c = Canvas(7.0, 4.2, "fusion_transformer")
    ys = (2.75, 1.85, 0.95)
    yf = 3.65
    inputs(c, 0.8, ys)
    for m, y in zip(MODS, ys):
        c.box(f"lin_{m}", (2.25, y), "Linear → dim", w=1.05, size=9.5)
        c.arrow(f"in_{m}", f"lin_{m}")
        c.op(f"add_{m}", (3.1, y), "+")
        c.arrow(f"lin_{m}", f"add_{m}")
        c.box(f"e_{m}", (3.1, y + 0.45), f"$e_{SHORT[m]}$", w=0.38, h=0.26, size=9)
        c.arrow(f"e_{m}", f"add_{m}")
    c.box("fuse", (3.1, yf), "[FUSE]", size=9)
    c.box("blocks", (4.3, 2.3), "Transformer\nblocks\n× depth", w=1.05, h=3.2)
    c.arrow("fuse", ("blocks", "left", yf - 2.3))
    for m, y in zip(MODS, ys):
        c.arrow(f"add_{m}", ("blocks", "left", y - 2.3))
    c.box("ln", (5.3, 2.3), "Layer\nNorm", w=0.62, h=3.2)
    for y in (yf, *ys):
        c.arrow(("blocks", "right", y - 2.3), ("ln", "left", y - 2.3))
    c.box("cat", (6.3, 2.3), "concat\n(missing\nslot → 0)", kind_="function", w=0.9, h=3.2)
    for y in (yf, *ys):
        c.arrow(("ln", "right", y - 2.3), ("cat", "left", y - 2.3))
    c.point("out", (6.3, 0.05))
    c.arrow("cat", "out", label="[B, (1+M)·dim]", label_side="left")
    c.text((1.1, yf), "$e_m$: learned modality\nembeddings; [FUSE]: a\nlearned token", color="#1A1A1A")
    c.text((4.3, 0.35), "self-attention over 1+M\ntokens; key_mask hides\nmissing modalities", va="top")
    alt = ("Transformer fusion: each modality's features are projected to one token of width dim and tagged with "
           "a learned modality embedding; a learned [FUSE] token joins them, Transformer blocks let all 1+M "
           "tokens attend to each other (missing modalities masked), and after a LayerNorm the [FUSE] token and "
           "every modality's token are concatenated, a missing modality's slot set to zero.")
    return c.finish(alt)


def cross_attention_fusion() -> Diagram:
    """``CrossAttentionFusion``: each modality's tokens query the other modalities' tokens (and a [NULL] key);
    drawn in detail for the text target, the audio and image targets work the same with their own blocks."""
    c = Canvas(7.0, 7.2, "fusion_cross_attention")
    xa, xi, xt = 1.0, 2.9, 5.2
    top = 6.6
    for m, x in zip(MODS, (xa, xi, xt)):
        c.box(f"in_{m}", (x, top), f"{m}  [B, L_{SHORT[m]}, D_{SHORT[m]}]", kind_=m, size=9, mono=True)
        c.box(f"proj_{m}", (x, top - 0.7), f"Linear → dim, + $e_{SHORT[m]}$", size=9.5)
        c.arrow(f"in_{m}", f"proj_{m}")
    c.box("null", (0.35 + 0.1, top - 1.45), "[NULL]", size=9)
    c.box("ctx", (1.95, top - 2.05), "concatenate along the length", kind_="function", w=3.6)
    c.arrow("null", ("ctx", "top", 0.45 - 1.95), route="straight")
    c.arrow("proj_audio", ("ctx", "top", xa - 1.95))
    c.arrow("proj_image", ("ctx", "top", xi - 1.95))
    c.box("ln_kv", (1.95, top - 2.9), "LayerNorm", w=1.3)
    c.arrow("ctx", "ln_kv", label="[B, 1+L_a+L_i, dim]", label_side="right", label_at=0.35)
    c.point("split_q", (xt, top - 1.45), dot=True)
    c.arrow("proj_text", "split_q", head="none")
    c.box("ln_q", (xt, top - 2.9), "LayerNorm", w=1.3)
    c.arrow("split_q", "ln_q", label="[B, L_t, dim]", label_side="left")
    c.box("mha", (3.6, top - 3.7), "multi-head attention: queries from text,\nkeys = values = [NULL], audio, image",
          w=4.6, h=0.6)
    c.arrow("ln_kv", ("mha", "top", 1.95 - 3.6), label="keys, values", label_side="left", mono=False)
    c.arrow("ln_q", ("mha", "top", xt - 3.6), label="queries", label_side="right", mono=False)
    c.op("add1", (xt, top - 4.45), "+")
    c.arrow(("mha", "bottom", xt - 3.6), "add1")
    c.arrow("split_q", "add1", route="hvh", mid=xt + 1.0)
    c.box("ffn", (xt, top - 5.15), "x + FFN(LayerNorm(x))", w=2.0)
    c.arrow("add1", "ffn")
    c.box("mean", (xt, top - 5.85), "mean over the L_t tokens", kind_="function")
    c.arrow("ffn", "mean")
    c.group(["ln_q", "ln_kv", "mha", "add1", "ffn"], "CrossModalBlock (text's own weights)", pad=0.12,
            caption_at="bottom-left")
    for m, x, src in (("audio", 0.95, "image, text"), ("image", 2.85, "audio, text")):
        c.box(f"other_{m}", (x, top - 6.55), f"{m} ← {src}", kind_="note", size=9)
    c.box("cat", (3.6, top - 7.35), "concatenate in sorted order", kind_="function")
    c.arrow("mean", ("cat", "right"), route="vh", label="text ← audio, image\n[B, dim]", label_side="right",
            label_seg=0, mono=False)
    for m in ("audio", "image"):
        c.arrow(f"other_{m}", "cat", route="vh")
    c.point("out", (3.6, top - 8.0))
    c.arrow("cat", "out", label="[B, 3·dim]", label_side="right")
    c.text((1.9, top - 6.05), "the same for every target, each\nwith its own block:", va="bottom")
    alt = ("Cross-attention fusion, drawn for the text target: all tokens are projected to width dim with a "
           "modality embedding; the text tokens, layer-normalised, are the queries and a learned [NULL] key plus "
           "the audio and image tokens are the keys and values of a multi-head attention; its output is added "
           "back to the text tokens, a residual feed-forward layer follows, and the tokens are averaged. Audio "
           "and image get the same treatment with their own blocks, and the three vectors are concatenated.")
    return c.finish(alt)
