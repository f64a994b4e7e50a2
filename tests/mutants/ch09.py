"""Wrong answers for chapter 09's checks (gated fusion, tensor fusion, late fusion, missing modalities)."""

import torch

from . import Mutant


def gmu_gate_swapped(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=-1) @ w_z.T)
    return (1 - z) * torch.tanh(x_a @ w_a.T) + z * torch.tanh(x_b @ w_b.T)


def gmu_no_tanh(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=-1) @ w_z.T)
    return z * (x_a @ w_a.T) + (1 - z) * (x_b @ w_b.T)


def gmu_gate_order(x_a, x_b, w_a, w_b, w_z):
    z = torch.sigmoid(torch.cat([x_b, x_a], dim=-1) @ w_z.T)
    return z * torch.tanh(x_a @ w_a.T) + (1 - z) * torch.tanh(x_b @ w_b.T)


def fuse_without_ones(a, b):
    return (a.unsqueeze(2) * b.unsqueeze(1)).flatten(1)


def fuse_b_outer_a(a, b):
    a1 = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
    b1 = torch.cat([b, b.new_ones(b.shape[0], 1)], dim=1)
    return (b1.unsqueeze(2) * a1.unsqueeze(1)).flatten(1)


def fuse_ones_first(a, b):
    a1 = torch.cat([a.new_ones(a.shape[0], 1), a], dim=1)
    b1 = torch.cat([b.new_ones(b.shape[0], 1), b], dim=1)
    return (a1.unsqueeze(2) * b1.unsqueeze(1)).flatten(1)


def late_mean_of_logits(logits, present):
    names = sorted(logits)
    w = torch.stack([present[m].float() if present is not None and m in present else torch.ones(len(logits[m]))
                     for m in names])
    z = torch.stack([logits[m] for m in names])
    return ((w.unsqueeze(-1) * z).sum(0) / w.sum(0).unsqueeze(-1)).softmax(-1)


def late_ignores_present(logits, present):
    return torch.stack([v.softmax(-1) for v in logits.values()]).mean(0)


def late_divides_by_all(logits, present):
    names = sorted(logits)
    w = torch.stack([present[m].float() if present is not None and m in present else torch.ones(len(logits[m]))
                     for m in names])
    probs = torch.stack([logits[m].softmax(-1) for m in names])
    return (w.unsqueeze(-1) * probs).sum(0) / len(names)


def _accuracy(model, x, present, targets, task):
    model.eval()
    with torch.no_grad():
        return float((model(x, present)[task].argmax(-1) == targets[task]).float().mean())


def acc_zeroes_without_present(model, inputs, targets, drop, task):
    x = {m: torch.zeros_like(v) if m in drop else v for m, v in inputs.items()}
    return _accuracy(model, x, None, targets, task)


def acc_zeroes_in_place(model, inputs, targets, drop, task):
    for m in drop:
        inputs[m].zero_()
    present = {m: torch.zeros(len(targets[task]), dtype=torch.bool) for m in drop} or None
    return _accuracy(model, inputs, present, targets, task)


def acc_returns_tensor(model, inputs, targets, drop, task):
    x = {m: torch.zeros_like(v) if m in drop else v for m, v in inputs.items()}
    present = {m: torch.zeros(len(targets[task]), dtype=torch.bool) for m in drop} or None
    model.eval()
    with torch.no_grad():
        return (model(x, present)[task].argmax(-1) == targets[task]).float().mean()


MUTANTS = {
    "09.gated_fusion": {"gate swapped": gmu_gate_swapped, "no tanh": gmu_no_tanh, "gate input order": gmu_gate_order},
    "09.tensor_fusion": {"no appended ones": Mutant(fuse_without_ones, "[1, 12]"), "b outer a": fuse_b_outer_a,
                         "ones first": fuse_ones_first},
    "09.late_fusion_combine": {"mean of logits": late_mean_of_logits,
                               "ignores present": Mutant(late_ignores_present, "missing modalities"),
                               "divides by every modality": late_divides_by_all},
    "09.missing_modality_eval": {"zeroes without present": Mutant(acc_zeroes_without_present, "present"),
                                 "zeroes the caller's inputs": Mutant(acc_zeroes_in_place, "in place"),
                                 "returns a tensor": Mutant(acc_returns_tensor, "float")},
}
