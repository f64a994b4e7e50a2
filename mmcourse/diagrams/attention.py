"""Diagrams of chapter 07: scaled dot-product and multi-head attention, the Transformer block, ViT patches.

They draw ``mmcourse.layers.attention`` (masks are True where a position may be attended to; a masked score
becomes −∞ before the softmax), ``MultiHeadAttention`` (one input projection split in three, ``h`` heads of
width ``d = D/h``, an output projection) and ``mmcourse.layers.transformer.TransformerBlock`` (pre-norm:
``x + attn(LN(x))`` then ``x + mlp(LN(x))``), plus the post-norm block of the original Transformer.
"""

from __future__ import annotations

import numpy as np

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram

STEP = 0.62


def scaled_dot_product_attention() -> Diagram:
    """``softmax(Q Kᵀ / √E + mask) V``, top to bottom, with the shape of every intermediate tensor."""
    c = Canvas(6.0, 5.6, "scaled_dot_product_attention")
    xq, xk, xv = 0.85, 2.65, 4.55
    top = 5.1
    c.box("q", (xq, top), "Q  [B, h, Lq, E]", kind_="data", size=9, mono=True)
    c.box("k", (xk, top), "K  [B, h, Lk, E]", kind_="data", size=9, mono=True)
    c.box("v", (xv, top), "V  [B, h, Lk, Ev]", kind_="data", size=9, mono=True)
    x = 1.75
    y = top - 0.85
    c.box("mm1", (x, y), "matmul  Q Kᵀ", kind_="function")
    c.box("scale", (x, y - STEP), "scale  × 1/√E", kind_="function")
    c.box("mask", (x, y - 2 * STEP), "mask: −∞ where not allowed", kind_="function")
    c.box("softmax", (x, y - 3 * STEP), "softmax over the keys", kind_="function")
    c.box("mm2", (x, y - 4 * STEP), "matmul  weights · V", kind_="function")
    c.box("out", (x, y - 5 * STEP), "output  [B, h, Lq, Ev]", kind_="data", size=9, mono=True)
    c.arrow("q", "mm1", route="vh")
    c.arrow("k", "mm1", route="vh")
    c.arrow("mm1", "scale", label="scores [B, h, Lq, Lk]", label_side="right", mono=True)
    c.arrow("scale", "mask")
    c.arrow("mask", "softmax")
    c.arrow("softmax", "mm2", label="weights [B, h, Lq, Lk]", label_side="right", mono=True)
    c.arrow("v", "mm2", route="vh")
    c.arrow("mm2", "out")
    c.text((c["mask"].right + 0.12, c["mask"].y), "key_mask (padding)\nand/or causal (j ≤ i);\n"
           "a row with no allowed\nkey gets weights 0", ha="left")
    alt = ("Scaled dot-product attention: the queries Q and keys K are multiplied into scores of shape "
           "[B, h, Lq, Lk], scaled by 1/sqrt(E), masked with minus infinity where a key may not be attended to, "
           "and turned into weights by a softmax over the keys; the weights multiply the values V to give an "
           "output of shape [B, h, Lq, Ev].")
    return c.finish(alt)


def multi_head_attention() -> Diagram:
    """``MultiHeadAttention``: project Q, K, V, split into h heads, attend per head, concatenate, project."""
    c = Canvas(6.0, 5.4, "multi_head_attention")
    xs = (1.0, 2.9, 4.8)
    top = 4.9
    names = (("query", "q"), ("key", "k"), ("value", "v"))
    for x, (word, n) in zip(xs, names):
        c.box(f"in_{n}", (x, top), f"{word}  [B, L{'q' if n == 'q' else 'k'}, D]", kind_="data", size=9, mono=True)
        c.box(f"lin_{n}", (x, top - STEP), f"Linear $W_{n}$  D → D")
        c.box(f"split_{n}", (x, top - 2 * STEP), "split into h heads", kind_="function")
        c.arrow(f"in_{n}", f"lin_{n}")
        c.arrow(f"lin_{n}", f"split_{n}")
    c.box("sdpa", (2.9, top - 3.45 * STEP), "scaled dot-product attention, one per head (in parallel)",
          kind_="function", w=4.6, h=0.5, stack=2)
    for x, n in zip(xs, "qkv"):
        c.arrow(f"split_{n}", ("sdpa", "top", x - 2.9), label=f"[B, h, L{'q' if n == 'q' else 'k'}, d]",
                label_side="right")
    c.box("concat", (2.9, top - 5 * STEP), "concatenate the heads", kind_="function")
    c.box("out_proj", (2.9, top - 6 * STEP), "Linear out_proj  D → D")
    c.box("out", (2.9, top - 7 * STEP), "output  [B, Lq, D]", kind_="data", size=9, mono=True)
    c.arrow("sdpa", "concat", label="[B, h, Lq, d]", label_side="right")
    c.arrow("concat", "out_proj", label="[B, Lq, D]", label_side="right")
    c.arrow("out_proj", "out")
    c.text((0.15, top - 6 * STEP), "d = D / h\n$W_q, W_k, W_v$: chunks\nof in_proj_weight", ha="left")
    c.text((5.45, top - 6 * STEP), "self-attention:\nquery = key =\nvalue = x", ha="right")
    alt = ("Multi-head attention: the query, key and value inputs of width D each go through their own linear "
           "projection and are split into h heads of width d = D/h; scaled dot-product attention runs in every "
           "head in parallel, and the heads' outputs are concatenated back to width D and projected by a last "
           "linear layer.")
    return c.finish(alt)


def transformer_block(pre_norm: bool = True) -> Diagram:
    """A Transformer encoder block: pre-norm (``TransformerBlock``, the default) or post-norm (Vaswani et al.).

    Args:
        pre_norm: True: ``x = x + attn(LN(x)); x = x + mlp(LN(x))``. False: ``x = LN(x + attn(x));
            x = LN(x + mlp(x))``.
    """
    c = Canvas(5.2, 7.0, "transformer_block" if pre_norm else "transformer_block_post_norm")
    x, xr = 2.35, 3.85
    w = 2.0
    top = 6.5
    c.title((x, top + 0.5), "pre-norm Transformer block" if pre_norm else "post-norm Transformer block")
    c.box("x", (x, top), "x  [B, L, D]", kind_="data", mono=True, size=9)
    attn = [("ln1", "LayerNorm", "learned")] if pre_norm else []
    attn += [("attn", "multi-head self-attention", "learned")]
    ffn = [("ln2", "LayerNorm", "learned")] if pre_norm else []
    ffn += [("fc1", "Linear  D → 4D", "learned"), ("gelu", "GELU", "function"), ("fc2", "Linear  4D → D", "learned")]
    y = top - 0.45
    prev = "x"
    step = 0.52
    for part, items in (("1", attn), ("2", ffn)):
        c.point(f"split{part}", (x, y), dot=True)
        c.arrow(prev, f"split{part}", head="none")
        y -= 0.45
        for i, (n, label, k) in enumerate(items):
            c.box(n, (x, y), label, kind_=k, w=w)
            c.arrow(f"split{part}" if i == 0 else items[i - 1][0], n)
            y -= step if i < len(items) - 1 else 0.55
        c.op(f"add{part}", (x, y), "+")
        c.arrow(items[-1][0], f"add{part}")
        c.arrow(f"split{part}", f"add{part}", route="hvh", mid=xr)
        caption = "attention\nsub-layer" if part == "1" else "feed-forward\nsub-layer\n(MLP)"
        c.group([items[0][0], items[-1][0]], caption, pad=0.1, caption_at="left")
        prev = f"add{part}"
        if not pre_norm:
            y -= 0.5
            c.box(f"post_ln{part}", (x, y), "LayerNorm", w=w)
            c.arrow(prev, f"post_ln{part}")
            prev = f"post_ln{part}"
        y -= 0.45
    c.box("out", (x, y - 0.05), "out  [B, L, D]", kind_="data", mono=True, size=9)
    c.arrow(prev, "out")
    c.text((xr + 0.1, (c["split1"].y + c["add1"].y) / 2), "residual\npath", ha="left")
    c.text((x, c["out"].bottom - 0.15), "key_mask: padded keys get weight 0\ndropout (training): on the attention "
           "weights,\nafter GELU and after each sub-layer", va="top")
    if pre_norm:
        alt = ("A pre-norm Transformer block: x plus multi-head self-attention of LayerNorm(x), then that plus an "
               "MLP (Linear D to 4D, GELU, Linear 4D to D) of its LayerNorm; the residual path from input to "
               "output passes through no normalisation.")
    else:
        alt = ("A post-norm Transformer block as in Vaswani et al.: x plus multi-head self-attention of x, "
               "normalised by LayerNorm, then that plus an MLP (Linear D to 4D, GELU, Linear 4D to D) of it, "
               "normalised again.")
    return c.finish(alt)


def _toy_image(n: int = 24) -> np.ndarray:
    """A small RGB picture (a blue disc and an orange bar on a pale background) to cut into patches."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    img = np.ones((n, n, 3)) * np.array([0.93, 0.95, 0.97])
    disc = (xx - 0.35) ** 2 + (yy - 0.4) ** 2 < 0.06
    img[disc] = np.array([0.0, 0.45, 0.7])
    bar = (xx > 0.55) & (xx < 0.9) & (yy > 0.68) & (yy < 0.82)
    img[bar] = np.array([0.9, 0.62, 0.0])
    return img


def patch_embedding(grid: int = 3, cls_token: bool = True) -> Diagram:
    """ViT's front end: an image cut into ``grid``×``grid`` patches, each flattened and linearly embedded,
    plus a position embedding; with ``cls_token`` a learned [CLS] token is put first and read out.

    Args:
        grid: patches per side (2 or 3; more do not fit the page).
        cls_token: read out a learned [CLS] token (True) or the mean of the tokens (False).
    """
    if grid not in (2, 3):
        raise ValueError(f"grid must be 2 or 3 patches per side to fit the page, got {grid}")
    c = Canvas(7.0, 5.8, "patch_embedding" if cls_token else "patch_embedding_mean")
    img = _toy_image(16 * grid)
    n, p = grid * grid, 16
    size, top = 1.1, 5.0
    c.image(img, (0.2, top - size / 2, 0.2 + size, top + size / 2))
    for k in range(grid + 1):
        v = k * size / grid
        c.line([0.2 + v, 0.2 + v], [top - size / 2, top + size / 2], color="white", lw=2, zorder=3)
        c.line([0.2, 0.2 + size], [top - size / 2 + v, top - size / 2 + v], color="white", lw=2, zorder=3)
    c.point("img", (0.2 + size, top))
    c.text((0.2 + size / 2, top + size / 2 + 0.08), "image [B, 3, H, W]", va="bottom", mono=True)
    tile, x0, dx = 0.34, 2.05, 0.44
    tiles = [x0 + i * dx for i in range(n)]
    for i, x in enumerate(tiles):
        r, col = divmod(i, grid)
        crop = img[r * p:(r + 1) * p, col * p:(col + 1) * p]
        c.image(crop, (x - tile / 2, top - tile / 2, x + tile / 2, top + tile / 2))
        c.point(f"tile{i}", (x, top - tile / 2))
    c.arrow("img", (tiles[0] - tile / 2 - 0.05, top))
    c.text(((tiles[0] + tiles[-1]) / 2, top + tile / 2 + 0.1), f"{n} patches of P×P pixels, each flattened:\n"
           "[B, L, 3·P·P], L = HW/P²", va="bottom")
    first = 1 if cls_token else 0
    cols = [0.45 + j * 0.56 for j in range(n + first)]
    lo, hi = min(cols[first], tiles[0]) - 0.25, max(cols[-1], tiles[-1]) + 0.25
    ylin = top - 1.0
    label = "Linear  3·P·P → D,  the same for every patch"
    c.box("linear", ((lo + hi) / 2, ylin), label, w=max(hi - lo, c.measure(label)[0] + 0.3))
    for i, x in enumerate(tiles):
        c.arrow(f"tile{i}", ("linear", "top", x - (lo + hi) / 2))
    ytok, yplus = ylin - 0.85, ylin - 1.5
    if cls_token:
        c.box("tok0", (cols[0], ytok), "[CLS]", kind_="learned", w=0.5, size=9)
    for j in range(first, len(cols)):
        c.box(f"tok{j}", (cols[j], ytok), "", kind_="data", w=0.36, h=0.34)
        c.arrow(("linear", "bottom", cols[j] - (lo + hi) / 2), f"tok{j}")
    yenc = yplus - 1.15
    mid = (cols[0] + cols[-1]) / 2
    label = "Transformer encoder: depth × block"
    c.box("enc", (mid, yenc), label, w=max(cols[-1] - cols[0] + 0.5, c.measure(label)[0] + 0.3), stack=1)
    for j, x in enumerate(cols):
        c.op(f"plus{j}", (x, yplus), "+", r=0.1, size=9)
        c.arrow(f"tok{j}", f"plus{j}")
        c.box(f"pos{j}", (x + 0.21, yplus - 0.5), str(j), kind_="learned", w=0.26, h=0.26, size=9)
        c.arrow(f"pos{j}", f"plus{j}", route="vh")
        c.arrow(f"plus{j}", ("enc", "top", x - mid))
    c.text((cols[-1] + 0.42, yplus - 0.5), "position\nembedding", ha="left")
    c.text((cols[-1] + 0.3, ytok), "tokens\n[B, L, D]" if not cls_token else "tokens\n[B, 1+L, D]", ha="left")
    rx = cols[0] if cls_token else mid
    c.point("readout", (rx, yenc - 0.8))
    c.arrow(("enc", "bottom", rx - mid), "readout", label="[CLS] state → head  [B, D]" if cls_token
            else "mean of the tokens → head  [B, D]", label_side="right", mono=False)
    alt = (f"A vision Transformer's patch embedding: an image is cut into {n} patches of P by P pixels, each patch "
           "is flattened and mapped by the same linear layer to a D-wide token, a learned position embedding is "
           "added to each token")
    alt += (", a learned [CLS] token is put in front, and the Transformer encoder's output at [CLS] feeds the "
            "head." if cls_token else ", and the mean of the encoder's outputs feeds the head.")
    return c.finish(alt)
