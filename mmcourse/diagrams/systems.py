"""Diagrams of chapters 10, 11 and 13: the two-tower contrastive model, the shared trunk with one head per
task, and the full system with the engine's GPU pieces.

``two_tower`` draws ``mmcourse.crossmodal.contrastive.ContrastiveModel`` and ``info_nce``; ``shared_trunk``
draws ``mmcourse.multitask.shared_trunk_model`` with its loss weightings; ``full_system`` draws
``mmcourse.system.System`` inside the training engine of ``mmcourse.engine.fit``.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.patches import Rectangle

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import LINE, MODALITY_COLOURS, TEXT, tint
from mmcourse.palette import OKABE_ITO


def two_tower(modalities: tuple[str, str] = ("image", "text"), batch: int = 4) -> Diagram:
    """Two encoders, two projections, L2-normalised embeddings, the ``[B, B]`` similarity matrix and the
    symmetric InfoNCE loss (positives on the diagonal).

    Args:
        modalities: the two towers' inputs, ``(a, b)``: ``("image", "text")``, ``("audio", "text")``, ….
        batch: rows and columns of the similarity matrix drawn (2–6).
    """
    if not 2 <= batch <= 6:
        raise ValueError(f"batch must be between 2 and 6 to fit the page, got {batch}")
    a, b = modalities
    for m in modalities:
        if m not in MODALITY_COLOURS:
            raise ValueError(f"unknown modality {m!r}; use two of {sorted(MODALITY_COLOURS)}")
    c = Canvas(7.0, 6.2, f"two_tower_{a}_{b}")
    cell = 2.0 / batch
    mx, my = 3.2, 1.6  # matrix bottom-left
    top = my + batch * cell
    # tower b runs along the top, its embeddings are the matrix's columns
    yb = top + 1.85
    c.box("in_b", (0.5, yb), b, kind_=b)
    c.box("enc_b", (1.55, yb), f"{b} encoder", w=1.2)
    c.box("proj_b", (2.85, yb), "Linear proj_b", w=1.15)
    c.box("norm_b", (mx + 1.0, yb), "L2 normalise", kind_="function")
    for s, d in (("in_b", "enc_b"), ("enc_b", "proj_b"), ("proj_b", "norm_b")):
        c.arrow(s, d)
    # tower a runs down the left, its embeddings are the matrix's rows
    ya = my + 1.0
    c.box("in_a", (0.75, ya + 2.1), a, kind_=a)
    c.box("enc_a", (0.75, ya + 1.4), f"{a} encoder", w=1.2)
    c.box("proj_a", (0.75, ya + 0.7), "Linear proj_a", w=1.15)
    c.box("norm_a", (0.75, ya), "L2 normalise", kind_="function")
    for s, d in (("in_a", "enc_a"), ("enc_a", "proj_a"), ("proj_a", "norm_a")):
        c.arrow(s, d)
    ca, cb = tint(MODALITY_COLOURS[a], 0.3), tint(MODALITY_COLOURS[b], 0.3)
    for i in range(batch):
        c.patch(Rectangle((mx + i * cell, top + 0.12), cell, 0.3, fc=cb, ec=LINE, lw=0.8, zorder=3))
        c.text((mx + (i + 0.5) * cell, top + 0.27), f"$b_{i + 1}$", color=TEXT)
        c.patch(Rectangle((mx - 0.42, top - (i + 1) * cell), 0.3, cell, fc=ca, ec=LINE, lw=0.8, zorder=3))
        c.text((mx - 0.27, top - (i + 0.5) * cell), f"$a_{i + 1}$", color=TEXT)
        for j in range(batch):
            face = tint(OKABE_ITO["bluish_green"], 0.55) if i == j else "#F4F4F4"
            c.patch(Rectangle((mx + j * cell, top - (i + 1) * cell), cell, cell, fc=face, ec=LINE, lw=0.8,
                                     zorder=3))
    c.point("cols", (c["norm_b"].x, top + 0.42))
    c.arrow("norm_b", "cols", label="[B, dim]", label_side="right")
    c.point("rows", (mx - 0.42, c["norm_a"].y))
    c.arrow("norm_a", "rows", label="[B, dim]", label_side="above")
    c.text((mx + 1.0, my - 0.12), "$S = a\\,b^\\top / \\tau$   [B, B]: cosine similarities;\n"
           "the diagonal holds the true pairs", va="top", color=TEXT)
    c.text((mx + 2.12, top - cell / 2), "row i: $a_i$ picks\n$b_i$ among all b", ha="left")
    c.text((mx + 2.12, top + 0.27), "column j: $b_j$ picks\n$a_j$ among all a", ha="left")
    c.box("loss", (mx + 1.0, 0.55), "InfoNCE = ½ [CE(rows) + CE(columns)]", kind_="loss", size=9.5)
    c.arrow((mx + 1.0, my - 0.58), "loss")
    c.text((mx + 1.0, 0.25), "τ is learned (stored as log(1/τ), clamped)", va="top")
    alt = (f"A two-tower contrastive model: the {a} and the {b} each go through their own encoder, a linear "
           "projection and L2 normalisation; the similarity matrix S = a bᵀ / τ of a batch has the matching "
           "pairs on its diagonal, and the symmetric InfoNCE loss is the cross-entropy of picking the diagonal "
           "entry along each row and along each column, averaged.")
    return c.finish(alt)


def shared_trunk(tasks: Sequence[str] = ("shape", "color", "size", "motion"),
                 modalities: Sequence[str] = ("image", "text", "audio")) -> Diagram:
    """Hard parameter sharing: encoders → fusion (the shared trunk) → one head per task → per-task losses →
    a loss weighting (fixed, uncertainty or DWA) → one total loss.

    Args:
        tasks: task names (1–4), one head each.
        modalities: input modalities (1–4), one encoder each.
    """
    if not 1 <= len(tasks) <= 4 or not 1 <= len(modalities) <= 4:
        raise ValueError(f"draw 1–4 tasks and 1–4 modalities, got {len(tasks)} and {len(modalities)}")
    c = Canvas(7.0, 6.2, "shared_trunk")
    mid = 3.3
    xs = [mid + (k - (len(modalities) - 1) / 2) * 1.35 for k in range(len(modalities))]
    top = 5.6
    for m, x in zip(modalities, xs):
        c.box(f"in_{m}", (x, top), m, kind_=m if m in MODALITY_COLOURS else "data")
        c.box(f"enc_{m}", (x, top - 0.75), f"{m} encoder", w=1.2)
        c.arrow(f"in_{m}", f"enc_{m}")
    fusion = "concatenation" if len(modalities) > 1 else "identity"
    ht = [mid + (k - (len(tasks) - 1) / 2) * 1.3 for k in range(len(tasks))]
    span = max(2.0, xs[-1] - xs[0] + 1.2, ht[-1] - ht[0] + 1.15)
    c.box("fuse", (mid, top - 1.6), f"fusion ({fusion})", w=span)
    for m, x in zip(modalities, xs):
        c.arrow(f"enc_{m}", ("fuse", "top", x - mid))
    c.group([f"enc_{m}" for m in modalities] + ["fuse"], "shared trunk:\nevery task's\ngradient\ntrains it",
            pad=0.12, caption_at="right")
    for t, x in zip(tasks, ht):
        c.box(f"head_{t}", (x, top - 2.65), f"head: {t}", w=1.15, size=9.5)
        c.arrow(("fuse", "bottom", x - mid), f"head_{t}")
        c.box(f"loss_{t}", (x, top - 3.45), f"$L_{{\\mathrm{{{t}}}}}$", kind_="loss", w=0.9)
        c.arrow(f"head_{t}", f"loss_{t}", label="logits", label_side="right", mono=False)
    c.box("weigh", (mid, top - 4.35), "loss weighting → one total loss", kind_="loss", w=max(3.0, span))
    for t, x in zip(tasks, ht):
        c.arrow(f"loss_{t}", ("weigh", "top", x - mid))
    c.text((mid, top - 4.85), "fixed: $\\Sigma_t\\, w_t L_t$      uncertainty: $\\Sigma_t\\, e^{-s_t} L_t + s_t/2$ "
           "(learned $s_t$)\nDWA, per epoch k: $w_t = T\\,\\mathrm{softmax}_t(r_t / \\mathrm{temp})$, "
           "$r_t = L_t(k-1) / L_t(k-2)$, T tasks", va="top", color=TEXT)
    c.text((ht[-1] + 0.62, top - 3.45), "cross-entropy;\ntarget −100\n= no label", ha="left")
    alt = (f"Hard parameter sharing: {', '.join(modalities)} each go through an encoder, a fusion combines them "
           f"into one shared representation, and one head per task ({', '.join(tasks)}) predicts from it; the "
           "task losses are combined into one total by a loss weighting (fixed, uncertainty or dynamic weight "
           "average) and every task's gradient trains the shared trunk.")
    return c.finish(alt)


def full_system(tasks: Sequence[str] = ("shape", "color", "size", "motion")) -> Diagram:
    """Raw samples → preprocessing → encoders → fusion → heads → predictions, with the engine's GPU pieces:
    resident data, bf16 autocast, channels_last, torch.compile, DDP, checkpoints and the saved system file."""
    c = Canvas(7.0, 6.2, "full_system")
    rows = {"image": ("pixels", "normalise\nper channel", "SmallCNN"),
            "text": ("caption strings", "tokenise, pad\nto caption_len", "GRU or\nTransformer"),
            "audio": ("waveforms", "log-mel, then\nnormalise", "AudioCNN"),
            "video": ("clip pixels", "normalise\nper channel", "Video3DCNN")}
    ys = [4.6, 3.8, 3.0, 2.2]
    xr, xp, xe, xf, xh, xo = 0.62, 1.95, 3.3, 4.3, 5.2, 6.3
    for (m, (raw, pre, enc)), y in zip(rows.items(), ys):
        c.box(f"raw_{m}", (xr, y), raw if len(raw) < 10 else raw.replace(" ", "\n"), kind_=m, w=1.05, h=0.6,
              size=9)
        c.box(f"pre_{m}", (xp, y), pre, kind_="function", w=1.2, h=0.6, size=9)
        c.box(f"enc_{m}", (xe, y), enc, w=1.05, h=0.6, size=9)
        c.arrow(f"raw_{m}", f"pre_{m}")
        c.arrow(f"pre_{m}", f"enc_{m}")
    yc = (ys[0] + ys[-1]) / 2
    c.box("fusion", (xf, yc), "fusion", w=0.66, h=ys[0] - ys[-1] + 0.6, size=9)
    for m, y in zip(rows, ys):
        c.arrow(f"enc_{m}", ("fusion", "left", y - yc))
    hy = [yc + (len(tasks) - 1) / 2 * 0.8 - k * 0.8 for k in range(len(tasks))]
    for t, y in zip(tasks, hy):
        c.box(f"head_{t}", (xh, y), f"head\n{t}", w=0.8, h=0.6, size=9)
        c.arrow(("fusion", "right", y - yc), f"head_{t}")
    c.box("pred", (xo, yc), "argmax →\nclass names\nper task", kind_="data", w=0.95, h=ys[0] - ys[-1] + 0.6,
          size=9)
    for t, y in zip(tasks, hy):
        c.arrow(f"head_{t}", ("pred", "left", y - yc))
    c.group([f"pre_{m}" for m in rows], "Preprocessing:\nfit on training data", pad=0.1, caption_at="top")
    box = c.group([f"enc_{m}" for m in rows] + ["fusion"] + [f"head_{t}" for t in tasks],
                  "torch.compile(DDP(model)),\nforward under autocast(bf16)", pad=0.12, caption_at="top",
                  kind_="engine")
    c.text(((box[0] + box[2]) / 2, box[1] - 0.06), "channels_last: image and video inputs and conv weights",
           va="top")
    notes = [("resident", (1.75, 0.7), "GPU-resident data: the batches\nare sliced from tensors already\non "
              "the device (BatchSource)"),
             ("ddp", (5.15, 0.7), "DDP under torchrun: one process\nper GPU, each its share of the\nbatch; "
              "gradients all-reduced"),
             ("ckpt", (1.75, -0.3), "checkpoint every epoch: model,\noptimiser, schedule, RNG, history\n"
              "(atomic write, resumable)"),
             ("file", (5.15, -0.3), "save_system: weights + SystemSpec\n+ Preprocessing as plain values,\n"
              "loaded with weights_only=True")]
    for name, xy, text in notes:
        c.box(name, xy, text, kind_="engine", w=3.1, h=0.85, size=9)
    c.text((0.2, 1.35), "around the model, the engine (mmcourse.engine.fit):", ha="left", color=TEXT, bold=True,
           size=10)
    alt = ("The full system: raw pixels, caption strings, waveforms and video clips are preprocessed (normalised, "
           "tokenised, turned into log-mel spectrograms), encoded by one encoder per modality, fused, and read by "
           "one head per task whose argmax gives the predicted class names; around the model, the engine compiles "
           "it, wraps it in DDP, runs the forward under bf16 autocast with channels_last tensors on data that "
           "lives on the GPU, checkpoints every epoch and saves the system as one weights-only file.")
    return c.finish(alt)
