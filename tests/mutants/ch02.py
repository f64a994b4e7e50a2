"""Wrong answers for chapter 02's checks (stable log-softmax, cross-entropy, expected calibration error)."""

import torch
import torch.nn.functional as F

from . import Mutant


def log_softmax_unstable(x, dim=-1):
    return x - torch.log(torch.exp(x).sum(dim, keepdim=True))


def log_softmax_last_dim_only(x, dim=-1):
    shifted = x - x.amax(-1, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


def log_softmax_torch(x, dim=-1):
    return torch.log_softmax(x, dim)


def log_softmax_method(x, dim=-1):
    return x.log_softmax(dim)


def _logp(x):
    shifted = x - x.amax(-1, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


def ce_no_smoothing(logits, target, label_smoothing=0.0, ignore_index=-100):
    keep = target != ignore_index
    return -_logp(logits[keep]).gather(1, target[keep][:, None]).mean()


def ce_ignored_rows_in_mean(logits, target, label_smoothing=0.0, ignore_index=-100):
    keep = (target != ignore_index).float()
    logp = _logp(logits)
    nll = -logp.gather(1, target.clamp_min(0)[:, None]).squeeze(1)
    loss = (1 - label_smoothing) * nll + label_smoothing * (-logp.mean(1))
    return (loss * keep).sum() / len(target)


def ce_F(logits, target, label_smoothing=0.0, ignore_index=-100):
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing, ignore_index=ignore_index)


def _ece(probs, labels, n_bins, weighted=True, confidence_of_label=False, half_open_left=False):
    conf, pred = probs.max(1)
    if confidence_of_label:
        conf = probs.gather(1, labels[:, None]).squeeze(1)
    correct = (pred == labels).float()
    total, terms = 0.0, []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf >= lo) & (conf < hi) if half_open_left else (conf > lo) & (conf <= hi)
        if inside.any():
            gap = abs(correct[inside].mean().item() - conf[inside].mean().item())
            terms.append(gap)
            total += inside.float().mean().item() * gap
    return total if weighted else sum(terms) / max(len(terms), 1)


def ece_unweighted(probs, labels, n_bins=10):
    return _ece(probs, labels, n_bins, weighted=False)


def ece_label_confidence(probs, labels, n_bins=10):
    return _ece(probs, labels, n_bins, confidence_of_label=True)


def ece_bins_closed_left(probs, labels, n_bins=10):
    return _ece(probs, labels, n_bins, half_open_left=True)  # a confidence of exactly 1.0 falls in no bin


MUTANTS = {
    "02.log_softmax": {"unstable": Mutant(log_softmax_unstable, "nan/inf"), "ignores dim": log_softmax_last_dim_only,
                       "torch.log_softmax": Mutant(log_softmax_torch, "not allow"),
                       "Tensor.log_softmax": Mutant(log_softmax_method, "not allow")},
    "02.cross_entropy": {"no label smoothing": Mutant(ce_no_smoothing, "label_smoothing=0.1"),
                         "ignored rows in the mean": Mutant(ce_ignored_rows_in_mean, "ignored"),
                         "F.cross_entropy": Mutant(ce_F, "not allow")},
    "02.ece": {"unweighted mean of bins": ece_unweighted, "confidence of the label": ece_label_confidence,
               "bins [lo, hi)": Mutant(ece_bins_closed_left, "0.5")},
}
