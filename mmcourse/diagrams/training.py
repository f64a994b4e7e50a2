"""Diagrams of chapters 12 and 13: the transfer recipes as layer stacks, and one training step of ``fit``.

``transfer_recipes`` draws what ``mmcourse.transfer`` does — frozen feature extraction, the linear probe,
full fine-tuning, probe-then-fine-tune (LP-FT), discriminative learning rates and gradual unfreezing — with
frozen layers grey and hatched. ``training_step`` draws the inner loop of ``mmcourse.engine.loop.fit``.
"""

from __future__ import annotations

from mmcourse.diagrams.core import Canvas
from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.style import TEXT

LAYERS = 4  # pretrained stages drawn per stack


def _stack(c: Canvas, key: str, x: float, y0: float, frozen: list[bool], head: str, head_frozen: bool = False,
           notes: list[str] | None = None, w: float = 0.88) -> None:
    """Input at the bottom, ``LAYERS`` pretrained layers, then the head; ``notes`` go right of each layer."""
    c.box(f"{key}_in", (x, y0), "input", kind_="data", w=w, h=0.3, size=9)
    prev = f"{key}_in"
    for k in range(LAYERS):
        name = f"{key}_l{k}"
        c.box(name, (x, y0 + 0.5 * (k + 1)), f"layer {k + 1}", kind_="frozen" if frozen[k] else "learned", w=w,
              h=0.34, size=9)
        c.arrow(prev, name)
        if notes and notes[k]:
            c.text((x + w / 2 + 0.06, y0 + 0.5 * (k + 1)), notes[k], ha="left", color=TEXT)
        prev = name
    c.box(f"{key}_head", (x, y0 + 0.5 * (LAYERS + 1) + 0.05), head, kind_="frozen" if head_frozen else "learned",
          w=w, h=0.34, size=9)
    c.arrow(prev, f"{key}_head")
    if notes and len(notes) > LAYERS and notes[LAYERS]:
        c.text((x + w / 2 + 0.06, c[f"{key}_head"].y), notes[LAYERS], ha="left", color=TEXT)


def transfer_recipes() -> Diagram:
    """Six ways to reuse a pretrained encoder, as layer stacks (grey, hatched = frozen; yellow = trained)."""
    c = Canvas(7.0, 5.2, "transfer_recipes")
    y0, top = 1.25, 4.3
    cols = [("feature\nextraction", 0.45), ("linear\nprobe", 1.42), ("full\nfine-tuning", 2.39),
            ("LP-FT", 3.58), ("discriminative\nlearning rates", 4.98), ("gradual\nunfreezing", 6.18)]
    for title, x in cols:
        c.text((x, top + 0.22), title, size=10, color=TEXT, bold=True, va="bottom")
    _stack(c, "fe", 0.45, y0, [True] * LAYERS, "head", w=0.78)
    _stack(c, "lp", 1.42, y0, [True] * LAYERS, "linear", w=0.78)
    _stack(c, "ft", 2.39, y0, [False] * LAYERS, "head", w=0.78)
    _stack(c, "lp1", 3.2, y0, [True] * LAYERS, "linear", w=0.66)
    _stack(c, "lp2", 3.96, y0, [False] * LAYERS, "linear", w=0.66)
    c.text((3.2, c["lp1_head"].top + 0.08), "stage 1", va="bottom")
    c.text((3.96, c["lp1_head"].top + 0.08), "stage 2", va="bottom")
    decays = ["lr·d⁴", "lr·d³", "lr·d²", "lr·d", "lr"]
    _stack(c, "dl", 4.75, y0, [False] * LAYERS, "head", w=0.6, notes=decays)
    _stack(c, "gu", 5.95, y0, [True, True, False, False], "head", w=0.6, notes=["ep. 4", "ep. 3", "ep. 2", "ep. 1", ""])
    captions = [(0.45, "encoder run\nonce; the\nhead trains"), (1.42, "standardised\nfeatures,\nlinear head"),
                (2.39, "all weights,\none rate"), (3.58, "probe first,\nthen fine-tune\nfrom its head"),
                (4.98, "rate × d per\nlayer down"), (6.18, "thaw a stage\nafter each\nepoch, top first")]
    for x, text in captions:
        c.text((x, y0 - 0.3), text, va="top")
    c.legend(["frozen", "learned"], (2.0, 0.0))
    alt = ("Six transfer recipes drawn as stacks of four pretrained layers with a head on top: feature extraction "
           "and the linear probe freeze every pretrained layer and train only the head; full fine-tuning trains "
           "everything at one learning rate; LP-FT first fits a linear probe, then fine-tunes everything from it; "
           "discriminative learning rates shrink the rate by a factor d per layer towards the input; gradual "
           "unfreezing thaws one layer per epoch from the top.")
    return c.finish(alt)


def training_step() -> Diagram:
    """One step of ``fit``: forward under autocast → loss → backward → clip → optimiser step → schedule step,
    with the per-epoch work (one host sync, evaluation, callbacks, checkpoint) beside it."""
    c = Canvas(7.0, 7.0, "training_step")
    steps = [
        ("batch", "batch = next(BatchSource)   (already on the GPU)", "data"),
        ("drop", "modality dropout (optional)", "function"),
        ("fwd", "with autocast(bf16):  out = model(inputs, present)", "learned"),
        ("loss", "loss = $\\Sigma_t\\, w_t\\, \\mathrm{CE}_t$   (mean cross-entropy per task)", "loss"),
        ("zero", "optimizer.zero_grad(set_to_none=True)", "function"),
        ("bwd", "scaler.scale(loss).backward()", "function"),
        ("clip", "clip_grad_norm_(params, clip_grad)   (optional)", "function"),
        ("opt", "scaler.step(optimizer);  scaler.update()", "function"),
        ("sched", "scheduler.step()   (every batch)", "function"),
        ("sum", "loss_sum += loss.detach()   (no .item(), no sync)", "function"),
    ]
    w = max(c.measure(label, 9.5)[0] for _, label, _ in steps) + 0.3
    x0 = 0.95
    x = x0 + w / 2
    y = 6.6
    for i, (name, label, k) in enumerate(steps):
        c.box(name, (x, y), label, kind_=k, w=w, size=9.5)
        if i:
            c.arrow(steps[i - 1][0], name)
        y -= 0.6
    c.arrow("sum", "batch", route="hvh", mid=x0 - 0.3, label="next\nbatch", label_side="left", mono=False)
    xe = x0 + w + 1.1
    epoch = [("read", "read the sums:\none sync per epoch", "function"), ("val", "evaluate(val)", "function"),
             ("cb", "callbacks\n(early stopping)", "function"), ("ckpt", "save_checkpoint\n(atomic)", "engine")]
    ye = 6.0
    for i, (name, label, k) in enumerate(epoch):
        c.box(name, (xe, ye), label, kind_=k, w=1.5, size=9.5)
        if i:
            c.arrow(epoch[i - 1][0], name)
        ye -= 0.85
    c.arrow("sum", "read", route="hvh", mid=x0 + w + 0.2)
    c.text((xe, 6.6), "after the last\nbatch of an epoch", color=TEXT, bold=True)
    c.text((x0 + w / 2, y + 0.25), "fp16 only: the GradScaler scales the loss (and unscales before clipping);\n"
           "with bf16 it does nothing. Under DDP, backward() also all-reduces the gradients.", va="top")
    alt = ("One training step of fit: take a batch that is already on the GPU, optionally drop modalities, run the "
           "model under bf16 autocast, compute the weighted sum of the tasks' cross-entropies, zero the gradients, "
           "back-propagate, optionally clip the gradient norm, step the optimiser and the learning-rate schedule, "
           "and add the loss to a sum on the device; after the last batch of an epoch the sums are read once, the "
           "model is evaluated, callbacks run and a checkpoint is saved.")
    return c.finish(alt)
