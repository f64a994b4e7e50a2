"""Hidden tests of chapter 11's exercises (multi-task learning): a two-head model, uncertainty weighting and
dynamic-weight-average weights.

The learner's notebook is ``solutions/11_multitask.ipynb`` (``exercises/`` holds the blank copy). Answers are
compared with ``mmcourse.multitask`` on small tensors built here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.grading.registry import register
from mmcourse.multitask import DynamicWeightAverage


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


def probe_uncertainty(fn, losses: torch.Tensor, log_vars: torch.Tensor) -> dict:
    """Call the answer on leaf tensors, backpropagate its total, and report the value and both gradients."""
    losses, log_vars = losses.clone().requires_grad_(True), log_vars.clone().requires_grad_(True)
    total = fn(losses, log_vars)
    if not isinstance(total, torch.Tensor) or total.dim() != 0:
        return {"scalar": False, "type": type(total).__name__}
    if total.requires_grad:
        total.backward()
    return {"scalar": True, "value": float(total.detach()), "grad_losses": losses.grad, "grad_log_vars": log_vars.grad}


@register("11.uncertainty_weighting", points=2, timeout=30,
          hint="total = sum(exp(-s) * L + s / 2) over tasks; keep it differentiable in both L and s")
def _uncertainty(fn):
    losses = torch.tensor([2.0, 0.5, 1.2], dtype=torch.double)
    s = torch.tensor([0.3, -0.7, 0.0], dtype=torch.double)
    seen = fn.probe(probe_uncertainty, losses, s)
    assert seen["scalar"], f"return one scalar tensor (the total loss), got {seen.get('type')}"
    want = float((torch.exp(-s) * losses + 0.5 * s).sum())
    assert abs(seen["value"] - want) < 1e-9, f"total {seen['value']:.6f}, expected {want:.6f}"
    grad_l, grad_s = seen["grad_losses"], seen["grad_log_vars"]
    assert grad_l is not None and torch.allclose(grad_l, torch.exp(-s)), \
        ("no gradient, or the wrong one, reaches the task losses: d total / d L_t must be exp(-s_t) — do not "
         "detach the losses, or the model being trained gets no gradient")
    assert grad_s is not None and torch.allclose(grad_s, -torch.exp(-s) * losses + 0.5), \
        "the gradient with respect to s is wrong: was s detached, or the regulariser not s / 2?"


@register("11.dwa_weights", points=2, timeout=30,
          hint="r = prev / prev2; w = T * softmax(r / temperature), T = number of tasks")
def _dwa(fn):
    for prev, prev2, temp in (([0.5, 1.0], [1.0, 1.0], 2.0), ([0.9, 0.3, 1.2], [1.0, 0.6, 1.1], 0.5)):
        got = fn(torch.tensor(prev), torch.tensor(prev2), temp)
        want = DynamicWeightAverage.weights_from(prev, prev2, temp)
        assert isinstance(got, torch.Tensor) and got.shape == (len(prev),), \
            f"return a tensor of {len(prev)} weights, got {type(got).__name__}"
        assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.double), atol=1e-5), \
            f"weights {got.tolist()} for losses {prev} after {prev2} (T={temp}); expected {want}"
        assert math.isclose(got.sum().item(), len(prev), rel_tol=1e-5), "the weights must sum to the number of tasks"
