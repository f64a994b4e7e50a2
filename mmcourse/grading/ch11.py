"""Hidden tests of chapter 11's exercises (transfer learning): freezing by name, a linear probe, and
discriminative learning-rate groups.

The learner's notebook is ``solutions/11_transfer.ipynb`` (``exercises/`` holds the blank copy). The answers
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


@register("11.freeze", points=2, timeout=30,
          hint="match name == prefix or name.startswith(prefix + '.'); set p.requires_grad = False; "
               "raise ValueError when no name matched")
def _freeze(fn):
    net = _net()
    got = fn(net, "1")
    assert got is not None and list(got) == ["1.weight", "1.bias"], \
        f"freezing prefix '1' should freeze ['1.weight', '1.bias'] (not '10.*' or '11.*'), returned {got}"
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen == ["1.weight", "1.bias"], f"after freezing '1' the frozen parameters are {frozen}"
    fn(net, "11")
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen == ["1.weight", "1.bias", "11.weight", "11.bias"], f"after freezing '11' frozen: {frozen}"
    try:
        fn(net, "encoder")
    except ValueError:
        pass
    else:
        raise AssertionError("a prefix that matches no parameter ('encoder') must raise ValueError")


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=g) * 3
    y = torch.randint(0, 4, (n,), generator=g)
    return centres[y] + torch.randn(n, 16, generator=g) + 5.0, y


@register("11.linear_probe", points=2, timeout=60,
          hint="standardise with the training mean/std, train nn.Linear(D, C) with cross-entropy for `steps` "
               "full-batch steps, then fold the standardisation into the layer (or standardise inside)")
def _linear_probe(fn):
    x, y = _blobs(40, 0)
    xt, yt = _blobs(400, 0)[0], _blobs(400, 0)[1]
    x_before = x.clone()
    head = fn(x, y, 4)
    assert isinstance(head, nn.Module), f"return the trained classifier (an nn.Module), got {type(head).__name__}"
    assert torch.equal(x, x_before), "do not change the features in place"
    with torch.no_grad():
        logits = head(xt)
    assert tuple(logits.shape) == (400, 4), f"the probe maps [N, 16] to [N, 4] logits, got {tuple(logits.shape)}"
    acc = (logits.argmax(-1) == yt).float().mean().item()
    assert acc > 0.9, f"the probe reaches only {acc:.2f} test accuracy on well separated clusters (want > 0.9)"


@register("11.discriminative_lr_groups", points=2, timeout=30,
          hint="for layer i (0 = nearest the input) of n: lr * decay ** (n - i); every other parameter goes "
               "in one last group with lr")
def _groups(fn):
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 3))
    for layers, decay in ((["0", "1"], 0.5), (["0", "1", "2"], 0.25)):
        got = fn(net, layers, 1e-2, decay)
        want = discriminative_param_groups(net, layers, lr=1e-2, decay=decay)
        assert isinstance(got, list) and all(isinstance(g, dict) for g in got), \
            "return a list of dicts {'params': [...], 'lr': ...}"
        lr_of = {id(p): g["lr"] for g in got for p in g["params"]}
        names = dict(net.named_parameters())
        for g in want:
            for p in g["params"]:
                name = next(n for n, q in names.items() if q is p)
                assert id(p) in lr_of, f"parameter {name} is in no group"
                assert abs(lr_of[id(p)] - g["lr"]) < 1e-12, \
                    f"layers={layers}, decay={decay}: {name} has lr {lr_of[id(p)]:.2e}, expected {g['lr']:.2e}"
        n_params = sum(len(g["params"]) for g in got)
        assert n_params == len(names), f"every parameter exactly once: got {n_params} entries for {len(names)}"
