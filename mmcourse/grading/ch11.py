"""Hidden tests of chapter 11's exercises (multi-task learning): a two-head model, PCGrad's projection of
conflicting gradients, weights from the tasks' gradient norms, the masked multi-task loss (find the bug)
and the loss-scale experiment.

The learner's notebook is ``solutions/11_multitask.ipynb`` (``exercises/`` holds the blank copy). Answers are
compared with references computed here on small tensors and models built here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.grading.choices import check_choices
from mmcourse.grading.registry import register


def probe_two_heads(cls) -> dict:
    """Build the learner's model around a known trunk, count the trunk's calls, backpropagate the size loss."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    calls: list[int] = []
    trunk.register_forward_hook(lambda module, inputs, output: calls.append(1))
    model = cls(trunk, 8, {"color": 6, "size": 3})
    if not isinstance(model, nn.Module):
        return {"type": type(model).__name__}
    out = model(torch.randn(4, 5))
    seen = {"type": "module", "trunk_calls": len(calls), "out_type": type(out).__name__}
    if not isinstance(out, dict):
        return seen
    seen["shapes"] = {str(k): list(v.shape) if isinstance(v, torch.Tensor) else None for k, v in out.items()}
    ids = {id(p) for p in model.parameters()}
    seen["trunk_inside"] = all(id(p) in ids for p in trunk.parameters())
    seen["head_params"] = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in trunk.parameters())
    if seen["shapes"].get("size") == [4, 3]:
        F.cross_entropy(out["size"], torch.tensor([0, 1, 2, 0])).backward()
        seen["trunk_grad"] = float(trunk[0].weight.grad.abs().sum()) if trunk[0].weight.grad is not None else 0.0
        seen["color_head_grad"] = sum(float(p.grad.abs().sum()) for p in model.parameters()
                                      if p.grad is not None and p.dim() == 2 and p.shape[0] == 6)
    return seen


@register("11.two_head_model", points=2, timeout=30,
          hint="keep the trunk as one attribute and the heads in an nn.ModuleDict of nn.Linear(dim, C); "
               "forward returns {task: head(trunk(x))}, calling the trunk once")
def _two_heads(cls):
    seen = cls.probe(probe_two_heads)
    assert seen["type"] == "module", f"TwoHeads must be an nn.Module, got {seen['type']}"
    assert seen["out_type"] == "dict" and set(seen["shapes"]) == {"color", "size"}, \
        f"forward must return a dict with one entry per task, got {seen['out_type']} {list(seen.get('shapes', []))}"
    assert seen["shapes"]["color"] == [4, 6] and seen["shapes"]["size"] == [4, 3], \
        f"logits shapes: color {seen['shapes']['color']} (want [4, 6]), size {seen['shapes']['size']} (want [4, 3])"
    assert seen["trunk_calls"] == 1, (f"one forward pass ran the trunk {seen['trunk_calls']} times: run it once and "
                                      "give its features to every head (that is what sharing the trunk saves)")
    assert seen["trunk_inside"], "the trunk you were given must be part of the model"
    assert seen["head_params"] == 8 * 6 + 6 + 8 * 3 + 3, \
        f"the heads should be two linear layers (81 parameters registered in the model), got {seen['head_params']}"
    assert seen["trunk_grad"] > 0, "the size loss must reach the shared trunk"
    assert seen["color_head_grad"] == 0, "the size loss must not change the colour head"


# --- 11.pcgrad: project conflicting task gradients (PCGrad, Yu et al. 2020) ---------------------------------


def reference_pcgrad(g1: torch.Tensor, g2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each gradient minus its component along the other's original gradient, only when they conflict."""
    d = g1 @ g2
    if d >= 0:
        return g1, g2
    return g1 - d / (g2 @ g2) * g2, g2 - d / (g1 @ g1) * g1


def _pcgrad_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(what, g1, g2): norms differ (a norm that is not squared shows), one pair agrees, one conflicts."""
    g = torch.Generator().manual_seed(11)
    a = torch.randn(40, generator=g, dtype=torch.double)
    b = -0.4 * a + torch.randn(40, generator=g, dtype=torch.double)  # conflicts with a
    c = 0.5 * a + torch.randn(40, generator=g, dtype=torch.double)  # agrees with a
    return [("conflicting gradients", torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=torch.double),
             torch.tensor([-1.0, 0.5, 3.0, -0.2], dtype=torch.double)),
            ("agreeing gradients", torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.double),
             torch.tensor([0.5, 1.0, 1.0, 0.0], dtype=torch.double)),
            ("conflicting gradients of 40 parameters", 3 * a, b),
            ("agreeing gradients of 40 parameters", a, 2 * c)]


@register("11.pcgrad", points=2, timeout=30,
          hint="d = g1 @ g2; only if d < 0: g1 - d / (g2 @ g2) * g2 and g2 - d / (g1 @ g1) * g1, both from the "
               "original gradients; else return them unchanged")
def _pcgrad(fn):
    for what, g1, g2 in _pcgrad_cases():
        d = float(g1 @ g2)
        got = fn(g1, g2)
        assert isinstance(got, (tuple, list)) and len(got) == 2, \
            f"return a tuple (g1, g2) of the two projected gradients, got {type(got).__name__}"
        p1, p2 = got
        for name, p in (("g1", p1), ("g2", p2)):
            assert isinstance(p, torch.Tensor) and p.shape == g1.shape, \
                f"{what}: the new {name} must be a tensor of shape {list(g1.shape)}, got {type(p).__name__}"
        p1, p2 = p1.double(), p2.double()
        if d >= 0:
            assert torch.allclose(p1, g1) and torch.allclose(p2, g2), (
                f"{what} (g1·g2 = {d:+.2f} > 0): they do not conflict, so return both unchanged; PCGrad "
                "projects only when the dot product is negative")
            continue
        assert not (torch.allclose(p1, g1) and torch.allclose(p2, g2)), (
            f"{what} (g1·g2 = {d:+.2f} < 0): both came back unchanged; when the dot product is negative, "
            "remove from each gradient its component along the other")
        for name, p, other, o in (("g1", p1, "g2", g2), ("g2", p2, "g1", g1)):
            along = float(p @ o) / float(o.norm())
            if abs(along) < 1e-6:
                continue
            if torch.allclose(p, g2 if name == "g2" else g1):
                raise AssertionError(f"{what}: the new {name} came back unchanged; when the gradients conflict, "
                                     f"project both: {name} loses its component along {other} too")
            raise AssertionError(
                f"{what}: the new {name} still has a component {along:+.4f} along {other}; after the projection "
                f"it must be orthogonal to {other}: subtract ({name}·{other}) / ||{other}||² · {other} (divide by "
                f"the squared norm: {other} appears twice in its own component)")
        want1, want2 = reference_pcgrad(g1, g2)
        assert torch.allclose(p1, want1) and torch.allclose(p2, want2), (
            f"{what}: expected g1 - (g1·g2)/||g2||² g2 and g2 - (g2·g1)/||g1||² g1, off by "
            f"{float(max((p1 - want1).abs().max(), (p2 - want2).abs().max())):.4g}: remove only the component "
            "along the other gradient, and keep everything else of each gradient")


# --- 11.gradnorm_weights: weights that equalise the tasks' gradient norms at the shared trunk --------------


def _gradnorm_setup(seed: int, scales: tuple[float, ...]) -> tuple[nn.Module, list[torch.Tensor]]:
    """A trunk and one head per task; task t's loss is scales[t] times a cross-entropy (its units)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh())
    heads = [nn.Linear(6, 3 + t) for t in range(len(scales))]
    h = trunk(torch.randn(12, 5, generator=g))  # [B, 6]
    losses = [s * F.cross_entropy(head(h), torch.randint(0, 3 + t, (12,), generator=g))
              for t, (s, head) in enumerate(zip(scales, heads))]
    return trunk, losses


def reference_gradnorm(seed: int, scales: tuple[float, ...]) -> torch.Tensor:
    """T (1 / n_t) / sum_s (1 / n_s), n_t the norm of dL_t / d(trunk) over all the trunk's parameters."""
    trunk, losses = _gradnorm_setup(seed, scales)
    shared = list(trunk.parameters())
    norms = torch.stack([torch.cat([gr.flatten() for gr in torch.autograd.grad(loss, shared, retain_graph=True)])
                         .norm() for loss in losses])  # [T]
    return (len(losses) / norms / (1 / norms).sum()).double()


GRADNORM_CASES = ((0, (1.0, 30.0)), (1, (1.0, 0.1, 5.0)))


def probe_gradnorm(fn, seed: int, scales: tuple[float, ...]) -> dict:
    """Call the answer on the setup's losses and trunk parameters, then try the training step's backward()."""
    trunk, losses = _gradnorm_setup(seed, scales)
    w = fn(losses, list(trunk.parameters()))
    if not isinstance(w, torch.Tensor):
        return {"type": type(w).__name__}
    seen = {"type": "tensor", "weights": w.detach().clone(), "requires_grad": w.requires_grad}
    for p in trunk.parameters():
        p.grad = None
    try:
        sum(wt.detach() * loss for wt, loss in zip(w.reshape(-1), losses)).backward()
        seen["step_ok"] = True
    except RuntimeError:
        seen["step_ok"] = False
    return seen


@register("11.gradnorm_weights", points=2, timeout=30,
          hint="for each loss: grads = torch.autograd.grad(loss, shared, retain_graph=True), n_t = the norm of "
               "all of them together; w = T * (1 / n) / (1 / n).sum()")
def _gradnorm(fn):
    for seed, scales in GRADNORM_CASES:
        T = len(scales)
        what = f"{T} tasks whose losses are scaled by {list(scales)}"
        seen = fn.probe(probe_gradnorm, seed, scales)
        assert seen["type"] == "tensor", f"return a tensor of {T} weights, got {seen['type']}"
        w = seen["weights"].double()
        assert w.shape == (T,), f"{what}: return {T} weights (shape [{T}]), got shape {list(w.shape)}"
        assert torch.isfinite(w).all(), f"{what}: the weights hold NaN or inf: {w.tolist()}"
        assert abs(float(w.sum()) - T) < 1e-4, \
            f"{what}: the weights must sum to the number of tasks, T = {T}, got {float(w.sum()):.4f}"
        assert seen["step_ok"], (f"{what}: after your function the training step's backward() failed: the graph "
                                 "of the losses was freed; pass retain_graph=True to every torch.autograd.grad")
        assert not seen["requires_grad"], (f"{what}: gradients flow through your weights; they must be constants "
                                           "of the training step (no create_graph=True; detach them)")
        want = reference_gradnorm(seed, scales)
        if torch.allclose(w, want, rtol=1e-4):
            continue
        trunk, losses = _gradnorm_setup(seed, scales)
        shared = list(trunk.parameters())
        grads = [torch.autograd.grad(loss, shared, retain_graph=True) for loss in losses]
        norms = torch.stack([torch.cat([g.flatten() for g in gs]).norm() for gs in grads]).double()
        if torch.allclose(w, T * norms / norms.sum(), rtol=1e-4):
            raise AssertionError(f"{what}: weights {[round(v, 4) for v in w.tolist()]} grow with the gradient "
                                 "norm; the task with the larger gradient must get the smaller weight: "
                                 "w_t ∝ 1 / ||∇ L_t||")
        summed = torch.stack([sum(g.norm() for g in gs) for gs in grads]).double()
        if torch.allclose(w, T / summed / (1 / summed).sum(), rtol=1e-4):
            raise AssertionError(f"{what}: you added up one norm per parameter tensor; take one norm over all "
                                 "the trunk's parameters together (the square root of the sum of all squares)")
        acc = torch.stack([torch.cat([sum(g[i] for g in grads[: t + 1]).flatten() for i in range(len(shared))])
                           .norm() for t in range(T)]).double()
        if torch.allclose(w, T / acc / (1 / acc).sum(), rtol=1e-4):
            raise AssertionError(f"{what}: each task's gradient also holds the earlier tasks' ones: .backward() "
                                 "accumulates into .grad; use torch.autograd.grad (or zero the grads between "
                                 "tasks)")
        raise AssertionError(f"{what}: weights {[round(v, 4) for v in w.tolist()]}, expected "
                             f"{[round(v, 4) for v in want.tolist()]}: n_t is the norm of the gradient of task "
                             "t's loss with respect to the shared parameters, and w_t = T (1/n_t) / sum_s (1/n_s)")


# --- 11.masked_task_loss: the colleague's total loss turns NaN on a batch without labels (find the bug) ------

MISSING = -100  # the course's marker of a missing label (``F.cross_entropy``'s default ``ignore_index``)


def _masked_cases() -> list[tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """(what, logits, targets): every label present; some missing; one task without any; none at all."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for what, drop in (("every label present", {"color": [], "size": []}),
                       ("some labels missing", {"color": [1, 4], "size": [0, 2, 3, 5]}),
                       ("no size label in the batch", {"color": [0], "size": [0, 1, 2, 3, 4, 5]}),
                       ("no label at all in the batch", {"color": [0, 1, 2, 3, 4, 5], "size": [0, 1, 2, 3, 4, 5]})):
        logits = {"color": torch.randn(6, 4, generator=g, dtype=torch.double) * 2,
                  "size": torch.randn(6, 3, generator=g, dtype=torch.double) * 2}
        targets = {"color": torch.randint(0, 4, (6,), generator=g), "size": torch.randint(0, 3, (6,), generator=g)}
        for t, rows in drop.items():
            targets[t][rows] = MISSING
        cases.append((what, logits, targets))
    return cases


def reference_masked_loss(logits: dict, targets: dict) -> torch.Tensor:
    """Sum over tasks of the mean cross-entropy over the labelled samples (a task without any adds 0)."""
    total = torch.zeros((), dtype=torch.double)
    for t, out in logits.items():
        y = targets[t]
        keep = y != MISSING
        if keep.any():
            total = total + F.cross_entropy(out[keep], y[keep])
    return total


def probe_masked_loss(fn, cases) -> list[dict]:
    """Call the answer on leaf logits, backpropagate its total, report the value and the logits' gradients."""
    seen = []
    for _what, logits, targets in cases:
        leaves = {t: v.clone().requires_grad_(True) for t, v in logits.items()}
        total = fn(leaves, {t: y.clone() for t, y in targets.items()})
        if not isinstance(total, torch.Tensor) or total.dim() != 0:
            seen.append({"scalar": False, "type": type(total).__name__})
            continue
        s = {"scalar": True, "value": float(total.detach()), "requires_grad": total.requires_grad}
        if total.requires_grad:
            total.backward()
            s["grads"] = {t: (None if v.grad is None else v.grad.clone()) for t, v in leaves.items()}
        seen.append(s)
    return seen


@register("11.masked_task_loss", points=2, timeout=30, kind="find-the-bug",
          hint="per task: keep = y != -100; add F.cross_entropy(out[keep], y[keep]) only when keep.any(); "
               "start the total from a zero that depends on the logits (e.g. 0 * out.sum()) so backward() works")
def _masked_task_loss(fn):
    cases = _masked_cases()
    seen = fn.probe(probe_masked_loss, cases)
    for (what, logits, targets), s in zip(cases, seen):
        what = f"multitask_loss on a batch of 6 ({what})"
        assert s["scalar"], f"{what}: return one scalar tensor (the total loss), got {s.get('type')}"
        want = reference_masked_loss(logits, targets)
        got = s["value"]
        if math.isnan(got):
            raise AssertionError(f"{what}: the total is NaN. F.cross_entropy of a batch whose labels are all -100 "
                                 "is 0/0: a task without any labelled sample in the batch must add nothing")
        assert s["requires_grad"], (f"{what}: the total does not depend on the logits, so the training loop's "
                                    "loss.backward() fails; even when no sample has a label return a zero "
                                    "connected to the logits (0 * out.sum())")
        if abs(got - float(want)) > 1e-6:
            clamped = sum(F.cross_entropy(o, targets[t].clamp_min(0)) for t, o in logits.items())
            if abs(got - float(clamped)) < 1e-6:
                raise AssertionError(f"{what}: total {got:.4f} trains the missing labels (-100) as class 0; a "
                                     "missing label must not count at all")
            raise AssertionError(f"{what}: total {got:.4f}, expected {float(want):.4f}: each task's loss is the "
                                 "mean cross-entropy over its labelled samples only (divide by how many have a "
                                 "label, not by the batch size), summed over the tasks")
        leaves = {t: v.clone().requires_grad_(True) for t, v in logits.items()}
        ref = reference_masked_loss(leaves, targets)
        if ref.requires_grad:
            ref.backward()
        for t, v in leaves.items():
            want_g = torch.zeros_like(v) if v.grad is None else v.grad
            got_g = s["grads"][t]
            got_g = torch.zeros_like(v) if got_g is None else got_g
            assert torch.isfinite(got_g).all(), (f"{what}: the gradient of the {t} logits holds NaN or inf — "
                                                 "0/0 is still in the graph; skip a task that has no labelled "
                                                 "sample instead of computing its empty mean")
            assert torch.allclose(got_g, want_g, atol=1e-8), (
                f"{what}: wrong gradient for the {t} logits: unlabelled samples must get zero gradient and each "
                "labelled one 1/(number labelled) of its cross-entropy gradient")


# --- 11.weighting_scales: which weighting balances a cross-entropy with a loss in pixels² (experiment) --------

SCALE_ANSWER = {"dominates": "position", "best": "uncertainty"}


@register("11.weighting_scales", points=2, timeout=10, kind="experiment",
          hint="compare the class accuracy of each weighting with the class task trained alone; look at the "
               "final weights: which weighting moved the position task's weight, and by how much?")
def _weighting_scales(fn):
    check_choices(fn(), answer=SCALE_ANSWER, options={"dominates": ("class", "position"),
                                                      "best": ("fixed", "uncertainty", "dwa")},
                  fn_name="verdict", what="{'dominates': task, 'best': weighting}", cases="the keys", wrong={
                      "dominates": "with equal fixed weights, which loss is larger by orders of magnitude, and which "
                                   "task's accuracy falls far below what it reaches alone? That task's gradient is the "
                                   "one drowned in the shared trunk",
                      "best": "it is not the weighting that brought the class accuracy back: compare the runs' class "
                              "accuracies, and check which weighting's final weights differ from 1 (DWA looks only "
                              "at how fast each loss falls relative to itself, not at its scale)"})
