"""Hidden tests of chapter 10's exercises (multi-task learning): a two-head model, uncertainty weighting and
dynamic-weight-average weights.

The learner's notebook is ``solutions/10_multitask.ipynb`` (``exercises/`` holds the blank copy). Answers are
compared with ``mmcourse.multitask`` on small tensors built here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.grading.registry import register
from mmcourse.multitask import DynamicWeightAverage


@register("10.two_head_model", points=2, timeout=30,
          hint="keep the trunk as one attribute and the heads in an nn.ModuleDict of nn.Linear(dim, C); "
               "forward returns {task: head(trunk(x))}, calling the trunk once")
def _two_heads(cls):
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    model = cls(trunk, 8, {"color": 6, "size": 3})
    assert isinstance(model, nn.Module), "TwoHeads must be an nn.Module"
    x = torch.randn(4, 5)
    out = model(x)
    assert isinstance(out, dict) and set(out) == {"color", "size"}, \
        f"forward must return a dict with one entry per task, got {type(out).__name__} {list(out)[:5]}"
    assert tuple(out["color"].shape) == (4, 6) and tuple(out["size"].shape) == (4, 3), \
        f"logits shapes: color {tuple(out['color'].shape)} (want (4, 6)), size {tuple(out['size'].shape)} (want (4, 3))"
    ids = {id(p) for p in model.parameters()}
    assert all(id(p) in ids for p in trunk.parameters()), "the trunk you were given must be part of the model"
    n_heads = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in trunk.parameters())
    assert n_heads == 8 * 6 + 6 + 8 * 3 + 3, f"the heads should be two linear layers (81 parameters), got {n_heads}"
    F.cross_entropy(out["size"], torch.tensor([0, 1, 2, 0])).backward()
    assert trunk[0].weight.grad is not None and trunk[0].weight.grad.abs().sum() > 0, \
        "the size loss must reach the shared trunk"
    color_grads = [p.grad for n, p in model.named_parameters() if p.grad is not None and p.dim() == 2
                   and p.shape[0] == 6]
    assert all(g.abs().sum() == 0 for g in color_grads), "the size loss must not change the colour head"


@register("10.uncertainty_weighting", points=2, timeout=30,
          hint="total = sum(exp(-s) * L + s / 2) over tasks; keep it differentiable in both L and s")
def _uncertainty(fn):
    losses = torch.tensor([2.0, 0.5, 1.2], dtype=torch.double, requires_grad=True)
    s = torch.tensor([0.3, -0.7, 0.0], dtype=torch.double, requires_grad=True)
    got = fn(losses, s)
    assert isinstance(got, torch.Tensor) and got.dim() == 0, "return one scalar tensor (the total loss)"
    want = (torch.exp(-s) * losses + 0.5 * s).sum()
    assert abs(got.item() - want.item()) < 1e-9, f"total {got.item():.6f}, expected {want.item():.6f}"
    got.backward()
    expect_s = (-torch.exp(-s.detach()) * losses.detach() + 0.5)
    assert s.grad is not None and torch.allclose(s.grad, expect_s), \
        "the gradient with respect to s is wrong: was s detached, or the regulariser not s / 2?"


@register("10.dwa_weights", points=2, timeout=30,
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
