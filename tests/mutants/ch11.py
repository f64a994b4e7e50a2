"""Wrong answers for chapter 11's checks (two-head model, PCGrad, gradient-norm weights, the masked
multi-task loss, the loss-scale experiment)."""

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


class TrunkPerHead(nn.Module):
    def __init__(self, trunk, dim, classes):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict({t: nn.Linear(dim, c) for t, c in classes.items()})

    def forward(self, x):
        return {t: head(self.trunk(x)) for t, head in self.heads.items()}  # the trunk runs once per head


class HeadsInPlainDict(nn.Module):
    def __init__(self, trunk, dim, classes):
        super().__init__()
        self.trunk = trunk
        self.heads = {t: nn.Linear(dim, c) for t, c in classes.items()}  # not registered: never trained or saved

    def forward(self, x):
        h = self.trunk(x)
        return {t: head(h) for t, head in self.heads.items()}


class DetachedTrunk(nn.Module):
    def __init__(self, trunk, dim, classes):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict({t: nn.Linear(dim, c) for t, c in classes.items()})

    def forward(self, x):
        h = self.trunk(x).detach()
        return {t: head(h) for t, head in self.heads.items()}


class ListOutput(HeadsInPlainDict):
    def forward(self, x):
        return list(super().forward(x).values())


def pcgrad_always(g1, g2):  # projects even when the gradients agree
    d = g1 @ g2
    return g1 - d / (g2 @ g2) * g2, g2 - d / (g1 @ g1) * g1


def pcgrad_condition_inverted(g1, g2):  # projects when they agree, not when they conflict
    d = g1 @ g2
    if d > 0:
        return g1 - d / (g2 @ g2) * g2, g2 - d / (g1 @ g1) * g1
    return g1, g2


def pcgrad_norm_not_squared(g1, g2):
    d = g1 @ g2
    if d < 0:
        return g1 - d / g2.norm() * g2, g2 - d / g1.norm() * g1
    return g1, g2


def pcgrad_sequential(g1, g2):  # g2 projected against the already projected g1: a no-op
    d = g1 @ g2
    if d < 0:
        g1 = g1 - d / (g2 @ g2) * g2
        g2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    return g1, g2


def pcgrad_keeps_the_component(g1, g2):  # the projection onto the other gradient, not onto its normal plane
    d = g1 @ g2
    if d < 0:
        return d / (g2 @ g2) * g2, d / (g1 @ g1) * g1
    return g1, g2


def pcgrad_only_first(g1, g2):  # forgets the second gradient
    d = g1 @ g2
    if d < 0:
        return g1 - d / (g2 @ g2) * g2, g2
    return g1, g2


def _trunk_norms(losses, shared, retain=True):
    norms = []
    for loss in losses:
        grads = torch.autograd.grad(loss, shared, retain_graph=retain)
        norms.append(torch.cat([g.flatten() for g in grads]).norm())
    return torch.stack(norms)


def gn_sums_to_one(losses, shared):
    inv = 1 / _trunk_norms(losses, shared)
    return inv / inv.sum()


def gn_proportional(losses, shared):  # more weight to the larger gradient
    n = _trunk_norms(losses, shared)
    return len(losses) * n / n.sum()


def gn_no_retain_graph(losses, shared):  # the second autograd.grad finds the graph freed
    inv = 1 / _trunk_norms(losses, shared, retain=False)
    return len(losses) * inv / inv.sum()


def gn_graph_freed_at_the_end(losses, shared):  # keeps the graph only until the last task
    norms = []
    for t, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, shared, retain_graph=t < len(losses) - 1)
        norms.append(torch.cat([g.flatten() for g in grads]).norm())
    inv = 1 / torch.stack(norms)
    return len(losses) * inv / inv.sum()


def gn_norm_per_tensor(losses, shared):  # one norm per parameter tensor, added up
    norms = []
    for loss in losses:
        grads = torch.autograd.grad(loss, shared, retain_graph=True)
        norms.append(sum(g.norm() for g in grads))
    inv = 1 / torch.stack(norms)
    return len(losses) * inv / inv.sum()


def gn_backward_accumulates(losses, shared):  # .backward() adds into .grad, never zeroed
    norms = []
    for loss in losses:
        loss.backward(retain_graph=True)
        norms.append(torch.cat([p.grad.flatten() for p in shared]).norm())
    inv = 1 / torch.stack(norms)
    return len(losses) * inv / inv.sum()


def masked_buggy(outputs, targets):  # the notebook's bug: NaN when a task has no label in the batch
    return sum(F.cross_entropy(outputs[t], targets[t]) for t in outputs)


def masked_clamped(outputs, targets):  # "fixes" the crash of -1 labels the wrong way: missing labels -> class 0
    return sum(F.cross_entropy(outputs[t], targets[t].clamp_min(0)) for t in outputs)


def masked_mean_over_batch(outputs, targets):  # divides by the batch size, not by the labelled samples
    total = 0
    for t, out in outputs.items():
        y = targets[t]
        keep = y != -100
        ce = F.cross_entropy(out, y.clamp_min(0), reduction="none")
        total = total + (ce * keep).mean()
    return total


def masked_constant_zero(outputs, targets):  # skips empty tasks, but a batch without labels returns a constant
    total = torch.zeros(())
    for t, out in outputs.items():
        keep = targets[t] != -100
        if keep.any():
            total = total + F.cross_entropy(out[keep], targets[t][keep])
    return total


def masked_right(outputs, targets):
    total = sum(0 * out.sum() for out in outputs.values())
    for t, out in outputs.items():
        keep = targets[t] != -100
        if keep.any():
            total = total + F.cross_entropy(out[keep], targets[t][keep])
    return total


def verdict_fixed():
    return {"dominates": "position", "best": "fixed"}


def verdict_dwa():
    return {"dominates": "position", "best": "dwa"}


def verdict_class_dominates():
    return {"dominates": "class", "best": "uncertainty"}


def verdict_a_list():
    return ["position", "uncertainty"]


MUTANTS = {
    "11.two_head_model": {"trunk once per head": Mutant(TrunkPerHead, "trunk 2 times"),
                          "heads in a plain dict": Mutant(HeadsInPlainDict, "81 parameters"),
                          "trunk detached": Mutant(DetachedTrunk, "reach the shared trunk"),
                          "a list of logits": Mutant(ListOutput, "dict")},
    "11.pcgrad": {"projects agreeing gradients too": Mutant(pcgrad_always, "do not conflict"),
                  "condition inverted": Mutant(pcgrad_condition_inverted, "both came back unchanged"),
                  "norm not squared": Mutant(pcgrad_norm_not_squared, "squared norm"),
                  "g2 against the projected g1": Mutant(pcgrad_sequential, "g2 came back unchanged"),
                  "keeps the component, drops the rest": Mutant(pcgrad_keeps_the_component, "orthogonal")},
    "11.gradnorm_weights": {"sums to 1": Mutant(gn_sums_to_one, "sum to the number of tasks"),
                            "proportional to the norm": Mutant(gn_proportional, "smaller weight"),
                            "no retain_graph": Mutant(gn_no_retain_graph, "retain_graph"),
                            "graph freed by the last task": Mutant(gn_graph_freed_at_the_end, "retain_graph=true"),
                            "one norm per parameter tensor": Mutant(gn_norm_per_tensor, "all the trunk's parameters"),
                            "backward() accumulates": Mutant(gn_backward_accumulates, "accumulates into .grad")},
    "11.masked_task_loss": {"the bug itself": Mutant(masked_buggy, "nan"),
                            "missing labels as class 0": Mutant(masked_clamped, "class 0"),
                            "mean over the whole batch": Mutant(masked_mean_over_batch, "labelled samples only"),
                            "a constant zero without labels": Mutant(masked_constant_zero, "backward")},
    "11.weighting_scales": {"fixed weights": verdict_fixed, "DWA": Mutant(verdict_dwa, "dwa"),
                            "class dominates": verdict_class_dominates, "not a dict": Mutant(verdict_a_list, "dict")},
}
