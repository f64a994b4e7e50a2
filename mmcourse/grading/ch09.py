"""Hidden tests of chapter 9's exercises (fusion): a gated unit, tensor fusion, late fusion, missing modalities.

The learner's notebook is ``solutions/09_fusion.ipynb`` (``exercises/`` holds the blank copy).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.fusion.basic import ConcatFusion
from mmcourse.grading.registry import register
from mmcourse.models import MultimodalModel


def _tensor(got: object, what: str) -> torch.Tensor:
    assert isinstance(got, torch.Tensor), f"{what} must return a tensor, got {type(got).__name__}"
    return got


@register("09.gated_fusion", points=2,
          hint="h_a = tanh(x_a W_a^T), h_b = tanh(x_b W_b^T), z = sigmoid([x_a; x_b] W_z^T); return z*h_a + (1-z)*h_b",
          timeout=30)
def _gated_fusion(fn):
    g = torch.Generator().manual_seed(0)
    for b, da, db, d in ((4, 3, 5, 6), (1, 2, 2, 1), (7, 8, 4, 3)):
        xa, xb = torch.randn(b, da, generator=g), torch.randn(b, db, generator=g)
        wa, wb = torch.randn(d, da, generator=g), torch.randn(d, db, generator=g)
        wz = torch.randn(d, da + db, generator=g)
        got = _tensor(fn(xa, xb, wa, wb, wz), "gmu")
        z = torch.sigmoid(torch.cat([xa, xb], -1) @ wz.T)
        want = z * torch.tanh(xa @ wa.T) + (1 - z) * torch.tanh(xb @ wb.T)
        assert tuple(got.shape) == (b, d), f"gmu must return [B, D] = {(b, d)}, got {tuple(got.shape)}"
        torch.testing.assert_close(got, want, msg=lambda m: f"gmu differs from z*h_a + (1-z)*h_b: {m}")


@register("09.tensor_fusion", points=2,
          hint="append a column of ones to each, then (a1.unsqueeze(2) * b1.unsqueeze(1)).flatten(1)", timeout=30)
def _tensor_fusion(fn):
    a, b = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0, 7.0, 11.0]])
    got = _tensor(fn(a, b), "tensor_fuse")
    assert tuple(got.shape) == (1, 12), f"[B, (2+1)*(3+1)] = [1, 12] expected, got {tuple(got.shape)}"
    want = torch.outer(torch.tensor([2.0, 3.0, 1.0]), torch.tensor([5.0, 7.0, 11.0, 1.0])).reshape(1, 12)
    torch.testing.assert_close(got, want, msg=lambda m: f"entry (i, j) must be [a; 1]_i * [b; 1]_j (row-major): {m}")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 2, generator=g)
    a1, b1 = torch.cat([a, torch.ones(5, 1)], 1), torch.cat([b, torch.ones(5, 1)], 1)
    torch.testing.assert_close(_tensor(fn(a, b), "tensor_fuse"), torch.einsum("bi,bj->bij", a1, b1).flatten(1))


def _late_reference(logits, present):
    names = sorted(logits)
    probs = torch.stack([logits[m].softmax(-1) for m in names])  # [M, B, C]
    w = torch.stack([present[m].float() if present and m in present else torch.ones(probs.shape[1])
                     for m in names])  # [M, B]
    return (w.unsqueeze(-1) * probs).sum(0) / w.sum(0).unsqueeze(-1)


@register("09.late_fusion_combine", points=2,
          hint="softmax each modality's logits, weight by present (1/0), sum over modalities, divide by the count",
          timeout=30)
def _late_fusion_combine(fn):
    g = torch.Generator().manual_seed(0)
    logits = {m: torch.randn(4, 3, generator=g) for m in ("text", "audio", "image")}
    got = _tensor(fn(logits, None), "late_combine")
    torch.testing.assert_close(got, _late_reference(logits, None),
                               msg=lambda m: f"with every modality present: mean of the softmax probabilities: {m}")
    present = {"audio": torch.tensor([True, False, True, False]), "image": torch.tensor([True, True, False, False])}
    got = _tensor(fn(logits, present), "late_combine")
    torch.testing.assert_close(got, _late_reference(logits, present),
                               msg=lambda m: f"missing modalities must be left out of the average: {m}")
    torch.testing.assert_close(got[3], logits["text"][3].softmax(-1),
                               msg=lambda m: f"sample 3 has only text: its probabilities are text's: {m}")
    torch.testing.assert_close(got.sum(-1), torch.ones(4), msg=lambda m: f"probabilities must sum to 1: {m}")


class _Affine(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)
        self.out_dim = w.shape[0]

    def forward(self, x):
        return self.lin(x)


@register("09.missing_modality_eval", points=2,
          hint="zero the dropped inputs, pass present={m: all-False tensor} for them, then compare argmax to targets",
          timeout=30)
def _missing_modality_eval(fn):
    g = torch.Generator().manual_seed(0)
    n = 64
    y = torch.randint(2, (n,), generator=g)
    sign = (2 * y - 1).float()
    inputs = {"a": torch.stack([sign, torch.randn(n, generator=g)], 1),
              "b": torch.stack([-sign, torch.randn(n, generator=g)], 1)}
    # encoders with a bias: a zeroed input still gives features, so only `present` removes a modality
    enc = {"a": _Affine(torch.tensor([[1.0, 0.0]]), torch.tensor([0.0])),
           "b": _Affine(torch.tensor([[-1.0, 0.0]]), torch.tensor([-5.0]))}
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
        head.bias.zero_()
    model = MultimodalModel(enc, ConcatFusion({"a": 1, "b": 1}), {"label": head}).eval()
    targets = {"label": y}
    seen = fn.probe(probe_accuracy_without, model, inputs, targets, [[], ["b"], ["a"]], "label")
    full, only_a, _ = seen["results"]
    assert isinstance(full, float), f"return a Python float, got {type(full).__name__}"
    with torch.no_grad():
        want_full = float((model(inputs)["label"].argmax(-1) == y).float().mean())
    assert abs(full - want_full) < 1e-6, f"with nothing dropped the accuracy is {want_full:.3f}, got {full:.3f}"
    assert only_a == 1.0, (f"with b dropped the model reads a alone and is always right (1.0), got {only_a:.3f}; "
                           "did you pass present={'b': False...} so that the fusion ignores b's bias?")
    assert all(torch.equal(inputs[k], seen["inputs_after"][k]) for k in inputs), \
        "do not modify the caller's inputs in place (zero a copy)"


def probe_accuracy_without(fn, model, inputs, targets, drops, task) -> dict:
    """Call the answer once per list of dropped modalities; report its results and the inputs afterwards."""
    results = [fn(model, inputs, targets, drop, task) for drop in drops]
    return {"results": results, "inputs_after": dict(inputs)}
