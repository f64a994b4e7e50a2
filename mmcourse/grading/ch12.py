"""Hidden tests of chapter 12's exercises (transfer learning): freezing by name, a linear probe, and
discriminative learning-rate groups.

The learner's notebook is ``solutions/12_transfer.ipynb`` (``exercises/`` holds the blank copy). The answers
are compared with ``mmcourse.transfer`` on small models built here.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.registry import register
from mmcourse.transfer.finetune import discriminative_param_groups


def _net() -> nn.Module:
    layers = [nn.Linear(3, 3) for _ in range(11)] + [nn.BatchNorm1d(3)]
    return nn.Sequential(*layers)


def probe_freeze(fn) -> dict:
    """Freeze '1', then '11', then 'encoder' (no match) on a fresh net; report returns, frozen names, the error."""
    net = _net()
    got = fn(net, "1")
    seen = {"returned": [str(n) for n in got] if isinstance(got, (list, tuple)) else type(got).__name__,
            "frozen_1": [n for n, p in net.named_parameters() if not p.requires_grad]}
    fn(net, "11")
    seen["frozen_11"] = [n for n, p in net.named_parameters() if not p.requires_grad]
    try:
        fn(net, "encoder")
        seen["error"] = None
    except ValueError as e:
        seen["error"], seen["message"] = "ValueError", str(e)
    return seen


@register("12.freeze", points=2, timeout=30,
          hint="match name == prefix or name.startswith(prefix + '.'); set p.requires_grad = False; "
               "raise ValueError naming the prefix when no name matched")
def _freeze(fn):
    seen = fn.probe(probe_freeze)
    assert seen["returned"] == ["1.weight", "1.bias"], \
        f"freezing prefix '1' should return ['1.weight', '1.bias'] (not '10.*' or '11.*'), returned {seen['returned']}"
    assert seen["frozen_1"] == ["1.weight", "1.bias"], \
        f"after freezing '1' the frozen parameters are {seen['frozen_1']}"
    assert seen["frozen_11"] == ["1.weight", "1.bias", "11.weight", "11.bias"], \
        f"after freezing '11' frozen: {seen['frozen_11']}"
    assert seen["error"] == "ValueError", "a prefix that matches no parameter ('encoder') must raise ValueError"
    assert "encoder" in seen["message"], f"the ValueError should name the prefix 'encoder', it says {seen['message']!r}"


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


def probe_groups(fn, layers, lr, decay) -> dict:
    """Call the answer on a fixed net; report each group as the names of its parameters and its lr."""
    net = _groups_net()
    got = fn(net, layers, lr, decay)
    names = {id(p): n for n, p in net.named_parameters()}
    if not isinstance(got, list) or not all(isinstance(g, dict) and "params" in g for g in got):
        return {"groups": None, "type": type(got).__name__}
    return {"groups": [{"names": [names.get(id(p), "(not a parameter of the model)") for p in g["params"]],
                        "lr": float(g["lr"]) if "lr" in g else None} for g in got]}


def _groups_net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 3))


@register("12.discriminative_lr_groups", points=2, timeout=30,
          hint="for layer i (0 = nearest the input) of n: lr * decay ** (n - i); every other parameter goes "
               "in one last group with lr")
def _groups(fn):
    net = _groups_net()
    names = dict(net.named_parameters())
    for layers, decay in ((["0", "1"], 0.5), (["0", "1", "2"], 0.25)):
        seen = fn.probe(probe_groups, layers, 1e-2, decay)
        assert seen["groups"] is not None, "return a list of dicts {'params': [...], 'lr': ...}"
        lr_of = {}
        for g in seen["groups"]:
            assert g["lr"] is not None, "every group needs its 'lr'"
            for name in g["names"]:
                lr_of.setdefault(name, []).append(g["lr"])
        for g in discriminative_param_groups(net, layers, lr=1e-2, decay=decay):
            for p in g["params"]:
                name = next(n for n, q in names.items() if q is p)
                assert name in lr_of, f"parameter {name} is in no group"
                assert len(lr_of[name]) == 1, f"parameter {name} is in {len(lr_of[name])} groups; put it in one"
                assert abs(lr_of[name][0] - g["lr"]) < 1e-12, \
                    f"layers={layers}, decay={decay}: {name} has lr {lr_of[name][0]:.2e}, expected {g['lr']:.2e}"
        extra = sorted(set(lr_of) - set(names))
        assert not extra, f"the groups hold something that is not a parameter of the model: {extra}"
