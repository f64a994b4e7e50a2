"""Hidden tests of chapter 12's exercises (transfer learning): gradual unfreezing (ULMFiT), a linear
probe, layer-wise learning-rate decay for a Transformer, training a head on a frozen backbone (find the
bug), and probe or fine-tune (experiment).

The learner's notebook is ``solutions/12_transfer.ipynb`` (``exercises/`` holds the blank copy). The answers
are compared with reference values the checks compute on small models built here.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.choices import check_choices
from mmcourse.grading.registry import register

# --- 12.gradual_unfreezing: which stages train at which epoch (ULMFiT) ------------------------------------------


class TinyTransformer(nn.Module):
    """Parameter names like chapter 07's ``TransformerTextEncoder`` with a head: ``cls``, ``embed.*``, ``pos.*``
    (the embeddings), ``blocks.<i>.*``, then ``norm.*`` and ``head.*``; tiny, so that a check builds it fast."""

    def __init__(self, depth: int, dim: int = 4):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.embed = nn.Embedding(10, dim)
        self.pos = nn.Embedding(8, dim)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


UNFREEZE_CASES = {
    # model, its stages from the head down, whether it arrives trainable, the epochs asked for in turn
    "transformer": (lambda: TinyTransformer(3), ["head", "norm", "blocks.2", "blocks.1", "blocks.0"], True,
                    [0, 1, 2, 3, 4, 5, 6]),
    "mlp": (lambda: nn.Sequential(*(nn.Linear(3, 3) for _ in range(4))), ["3", "2", "1", "0"], False, [2, 0, 5, 1]),
}


def probe_unfreeze(fn, case: str) -> list[dict]:
    """Call the answer for each epoch of the case in turn on one model; report what it returned and what trains."""
    make, stages, trainable, epochs = UNFREEZE_CASES[case]
    torch.manual_seed(0)
    model = make().requires_grad_(trainable)
    seen = []
    for epoch in epochs:
        got = fn(model, list(stages), epoch)
        seen.append({"returned": [str(n) for n in got] if isinstance(got, (list, tuple)) else type(got).__name__,
                     "trainable": [n for n, p in model.named_parameters() if p.requires_grad]})
    return seen


@register("12.gradual_unfreezing", points=2, timeout=30,
          hint="at epoch e the first e + 1 stages of the list (the head first) train; set requires_grad on every "
               "parameter at each call (True under a thawed stage, False everywhere else); return the thawed "
               "stages")
def _gradual_unfreezing(fn):
    for case, (make, stages, trainable, epochs) in UNFREEZE_CASES.items():
        names = [n for n, _ in make().named_parameters()]
        seen = fn.probe(probe_unfreeze, case)
        before = "every parameter trainable" if trainable else "every parameter frozen"
        for epoch, got in zip(epochs, seen):
            thawed = stages[:epoch + 1]
            want = [n for n in names if any(_under(n, s) for s in thawed)]
            call = f"{type(make()).__name__} with stages {stages}, epoch {epoch}"
            for k, stage in enumerate(stages):
                mine = [n for n in names if _under(n, stage)]
                on = [n for n in mine if n in got["trainable"]]
                if stage in thawed and on != mine:
                    raise AssertionError(
                        f"{call}: stage {stage!r} (stages[{k}]) should train but {sorted(set(mine) - set(on))} "
                        "are frozen. Stages are listed from the head down: at epoch 0 the head (stages[0]) alone "
                        "trains, at epoch e the first e + 1 stages, and stages thawed earlier keep training")
                if stage not in thawed and on:
                    raise AssertionError(
                        f"{call}: stage {stage!r} (stages[{k}]) should still be frozen, but {on} train. Each call "
                        "sets requires_grad on every parameter: the model may arrive with any parameter trainable "
                        f"(here it started with {before}, then earlier epochs were asked for)")
            loose = [n for n in got["trainable"] if n not in want]
            assert not loose, (f"{call}: {loose} belong to no stage and must stay frozen (the embeddings are not "
                               "scheduled here)")
            assert got["returned"] == thawed, (
                f"{call}: return the stages that train, head first: {thawed}; returned {got['returned']}")


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=g) * 3
    y = torch.randint(0, 4, (n,), generator=g)
    return centres[y] + torch.randn(n, 16, generator=g) + 5.0, y


def probe_linear_probe(fn, x, y, x_test, scale, shift) -> dict:
    """Train the learner's probe on x and on an affine copy of x (same seed); report both probes' test logits."""
    x_before = x.clone()
    torch.manual_seed(0)
    head = fn(x, y, 4)
    if not isinstance(head, nn.Module):
        return {"type": type(head).__name__}
    seen = {"type": "module", "x_unchanged": torch.equal(x, x_before)}
    with torch.no_grad():
        seen["logits"] = head(x_test)
    torch.manual_seed(0)
    moved = fn(x * scale + shift, y, 4)
    with torch.no_grad():
        seen["logits_moved"] = moved(x_test * scale + shift)
    return seen


@register("12.linear_probe", points=2, timeout=60,
          hint="standardise with the training mean/std, train nn.Linear(D, C) with cross-entropy for `steps` "
               "full-batch steps, then fold the standardisation into the layer (or standardise inside)")
def _linear_probe(fn):
    x, y = _blobs(40, 0)
    xt, yt = _blobs(400, 0)
    g = torch.Generator().manual_seed(7)
    scale, shift = torch.rand(16, generator=g) * 20 + 0.05, torch.randn(16, generator=g) * 100
    seen = fn.probe(probe_linear_probe, x, y, xt, scale, shift)
    assert seen["type"] == "module", f"return the trained classifier (an nn.Module), got {seen['type']}"
    assert seen["x_unchanged"], "do not change the features in place"
    logits = seen["logits"]
    assert tuple(logits.shape) == (400, 4), f"the probe maps [N, 16] to [N, 4] logits, got {tuple(logits.shape)}"
    acc = (logits.argmax(-1) == yt).float().mean().item()
    assert acc > 0.9, f"the probe reaches only {acc:.2f} test accuracy on well separated clusters (want > 0.9)"
    moved = seen["logits_moved"]
    gap = float((moved - logits).abs().max()) if moved.shape == logits.shape else float("inf")
    assert gap < 0.05 * (1 + float(logits.abs().max())), (
        "rescaling and shifting each feature (x * a + b) changed your probe's predictions (logits differ by "
        f"up to {gap:.3g}): standardise the features with their own mean and standard deviation before training, "
        "and apply the same standardisation to the inputs of the returned module")


# --- 12.llrd: layer-wise learning-rate decay for a Transformer, from its parameter names -------------------------

EMBEDDINGS = ("cls", "embed", "pos")


def llrd_depth(name: str, n_blocks: int) -> tuple[int, str]:
    """Steps below the top of the parameter ``name`` of a model with ``n_blocks`` blocks, and where it sits."""
    parts = name.split(".")
    if parts[0] in EMBEDDINGS:
        return n_blocks + 1, f"the embeddings (cls, embed.*, pos.*) sit below block 0: depth {n_blocks} + 1"
    if parts[0] == "blocks":
        i = int(parts[1])
        return n_blocks - i, (f"it is in block {i} of {n_blocks} (blocks.0 is nearest the input), {n_blocks - i} "
                              "below the top; read the block index as a number: blocks.10 is above blocks.9")
    return 0, "it is above every block (the final norm, the head): depth 0, the full lr"


def probe_llrd(fn, depth: int, lr: float, decay: float) -> dict:
    """Call the answer on a fresh TinyTransformer; report each group as its parameters' names and its lr."""
    torch.manual_seed(0)
    model = TinyTransformer(depth)
    got = fn(model, lr, decay)
    names = {id(p): n for n, p in model.named_parameters()}
    if not isinstance(got, list) or not all(isinstance(g, dict) and "params" in g for g in got):
        return {"groups": None, "type": type(got).__name__}
    return {"groups": [{"names": [names.get(id(p), "(not a parameter of the model)") for p in g["params"]],
                        "lr": float(g["lr"]) if isinstance(g.get("lr"), (int, float)) else None} for g in got]}


@register("12.llrd", points=2, timeout=30,
          hint="count the blocks from the names 'blocks.<i>.…' (as integers); depth 0 for the top (norm, head), "
               "n - i for block i, n + 1 for cls/embed/pos; lr * decay ** depth; one group per depth")
def _llrd(fn):
    for depth, lr, decay in ((3, 2e-3, 0.5), (12, 1e-3, 0.8)):
        call = f"llrd_groups(a Transformer with {depth} blocks, lr={lr}, decay={decay})"
        seen = fn.probe(probe_llrd, depth, lr, decay)
        assert seen["groups"] is not None, (
            f"{call}: return a list of dicts {{'params': [...], 'lr': ...}}, got {seen.get('type')}")
        names = [n for n, _ in TinyTransformer(depth).named_parameters()]
        lr_of: dict[str, list[float]] = {}
        for g in seen["groups"]:
            assert g["lr"] is not None, f"{call}: every group needs its 'lr' (a float)"
            for n in g["names"]:
                lr_of.setdefault(n, []).append(g["lr"])
        extra = sorted(set(lr_of) - set(names))
        assert not extra, f"{call}: the groups hold something that is not a parameter of the model: {extra}"
        for n in reversed(names):  # from the head down: the first wrong rate nearest the top
            assert n in lr_of, f"{call}: parameter {n} is in no group (every parameter trains at some rate)"
            assert len(lr_of[n]) == 1, f"{call}: parameter {n} is in {len(lr_of[n])} groups; put it in one"
            d, where = llrd_depth(n, depth)
            want = lr * decay ** d
            assert abs(lr_of[n][0] - want) <= 1e-9 * want, (
                f"{call}: {n} has lr {lr_of[n][0]:.4g}, expected lr * decay ** {d} = {want:.4g}: {where}")
        assert len(seen["groups"]) == depth + 2, (
            f"{call}: the rates are right, but give one group per depth ({depth + 2}: the embeddings, {depth} "
            f"blocks, the top), not {len(seen['groups'])}")


# --- 12.train_head_frozen: a "frozen" backbone whose batch norm keeps learning (find the bug) -----------------


def frozen_backbone(seed: int) -> nn.Module:
    """A small pretrained-looking backbone with batch norm (non-trivial running statistics) and dropout."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(10, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Dropout(0.3), nn.Linear(24, 12),
                        nn.ReLU())
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        net[1].running_mean.copy_(torch.randn(24, generator=g) * 0.5)
        net[1].running_var.copy_(torch.rand(24, generator=g) * 2 + 0.5)
    return net


def _head_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(48, 10, generator=g) * 2 + 1
    return x, (x[:, 0] + x[:, 1] > 2).long()


def probe_train_head(fn, seed: int, start_in_train: bool, steps: int, lr: float) -> dict:
    """Train the learner's head on a fresh backbone; report the backbone's state and mode after, whether its batch
    norm or dropout ran in training mode, and the head's weights."""
    backbone = frozen_backbone(seed).train(start_in_train)
    torch.manual_seed(seed + 3)
    head = nn.Linear(12, 2)
    x, y = _head_data(seed)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    modes: list[bool] = []
    for m in (backbone[1], backbone[3]):
        m.register_forward_hook(lambda mod, _i, _o: modes.append(mod.training))
    fn(backbone, head, x, y, steps=steps, lr=lr)
    after = backbone.state_dict()
    changed = sorted(k for k, v in before.items() if not k.endswith("num_batches_tracked")
                     and not torch.equal(v, after[k]))
    return {"changed": changed, "training_after": backbone.training, "train_mode_forwards": sum(modes),
            "forwards": len(modes), "head": {k: v.detach().clone() for k, v in head.state_dict().items()}}


def reference_head(seed: int, steps: int, lr: float) -> dict:
    """The head trained with Adam on the backbone's evaluation-mode features (computed once)."""
    backbone = frozen_backbone(seed).eval()
    torch.manual_seed(seed + 3)
    head = nn.Linear(12, 2)
    x, y = _head_data(seed)
    with torch.no_grad():
        feats = backbone(x)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(head(feats), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.state_dict()


@register("12.train_head_frozen", points=2, timeout=30, kind="find-the-bug",
          hint="remember backbone.training, call backbone.eval() (batch norm uses its running statistics and "
               "stops updating them, dropout is off), optimise only head.parameters(), then "
               "backbone.train(previous mode)")
def _train_head_frozen(fn):
    for seed, start_in_train, steps, lr in ((0, True, 30, 0.05), (1, False, 20, 0.1), (2, True, 40, 0.02)):
        mode = "train" if start_in_train else "eval"
        what = f"train_head(backbone in {mode} mode, head, x [48, 10], y, steps={steps}, lr={lr})"
        seen = fn.probe(probe_train_head, seed, start_in_train, steps, lr)
        stats = [k for k in seen["changed"] if k.endswith(("running_mean", "running_var"))]
        weights = [k for k in seen["changed"] if k not in stats]
        assert not weights, (f"{what} changed the backbone's parameters {weights}: a frozen backbone gets no "
                             "optimiser step — give the optimiser the head's parameters only")
        assert not stats, (f"{what} changed the backbone's batch-norm running statistics {stats}: requires_grad "
                           "= False does not stop them, training mode does; run the backbone in eval() mode")
        assert seen["forwards"] > 0, f"{what}: the backbone never ran"
        assert seen["train_mode_forwards"] == 0, (
            f"{what}: the backbone's batch norm or dropout ran in training mode in {seen['train_mode_forwards']} "
            f"of {seen['forwards']} layer calls — the head then learns from noisy features that the frozen model "
            "never produces at test time; put the whole backbone in eval() mode")
        assert seen["training_after"] == start_in_train, (
            f"{what}: afterwards the backbone is in {'train' if seen['training_after'] else 'eval'} mode; leave "
            "it in the mode you found it in")
        want = reference_head(seed, steps, lr)
        for k, v in want.items():
            got = seen["head"].get(k)
            assert got is not None and got.shape == v.shape and torch.allclose(got, v, atol=1e-5), (
                f"{what}: the head's {k} differs from Adam(head.parameters(), lr) trained for {steps} full-batch "
                "steps of cross-entropy on the backbone's evaluation-mode features")


# --- 12.probe_or_finetune: feature transfer or fine-tuning, for a related and an unrelated target (experiment) -

PROBE_ANSWER = {"related": "probe", "unrelated": "finetune"}


@register("12.probe_or_finetune", points=2, timeout=10, kind="experiment",
          hint="read the table: per target, which method has the higher mean test accuracy at 20 labels per "
               "class? Which inputs does the frozen backbone read at all?")
def _probe_or_finetune(fn):
    check_choices(fn(), answer=PROBE_ANSWER, options=("probe", "finetune"), fn_name="winners",
                  what="{target: 'probe' or 'finetune'}", cases="the keys", wrong={
                      "unrelated": "the unrelated target depends on inputs the pretrained backbone ignores (its first "
                                   "layer's weights for them are zero): no head on frozen features can read them — "
                                   "which method can change the first layer?",
                      "related": "for the related target the frozen features already hold the answer; with 20 labels "
                                 "per class, which method trained fewer parameters and generalised better in the "
                                 "run?"})
