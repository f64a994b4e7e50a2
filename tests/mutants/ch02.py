"""Wrong answers for chapter 02's checks (cross-entropy, its gradient by hand, expected calibration error, the
source post's classifier head)."""

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


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


def ce_log_of_softmax(logits, target, label_smoothing=0.0, ignore_index=-100):  # log(0) = -inf at +-800
    keep = target != ignore_index
    logp = torch.log(torch.softmax(logits[keep], -1))
    nll = -logp.gather(1, target[keep][:, None]).squeeze(1)
    return ((1 - label_smoothing) * nll + label_smoothing * (-logp.mean(1))).mean()


# --- 02.ce_grad -------------------------------------------------------------------------------------------


def _grad(logits, target, label_smoothing, ignore_index, softmax=None, divide="kept", smooth_others=False,
          skip_ignored=True):
    n, c = logits.shape
    keep = target != ignore_index
    p = (softmax or (lambda z: torch.softmax(z, -1)))(logits)
    onehot = F.one_hot(target.clamp_min(0), c).to(logits.dtype)
    if smooth_others:  # eps spread over the C - 1 wrong classes only
        q = (1 - label_smoothing) * onehot + label_smoothing / (c - 1) * (1 - onehot)
    else:
        q = (1 - label_smoothing) * onehot + label_smoothing / c
    grad = p - q
    if skip_ignored:
        grad = grad * keep[:, None].to(logits.dtype)
    return grad / {"kept": int(keep.sum()), "all": n, "none": 1}[divide]


def grad_right(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index)


def grad_unstable(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index,
                 softmax=lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True))


def grad_of_sum(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index, divide="none")


def grad_divides_by_all_rows(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index, divide="all")


def grad_no_smoothing(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, 0.0, ignore_index)


def grad_smooths_other_classes(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index, smooth_others=True)


def grad_ignored_rows_too(logits, target, label_smoothing=0.0, ignore_index=-100):
    return _grad(logits, target, label_smoothing, ignore_index, skip_ignored=False)


def grad_autograd(logits, target, label_smoothing=0.0, ignore_index=-100):
    with torch.enable_grad():
        z = logits.clone().requires_grad_()
        F.cross_entropy(z, target, label_smoothing=label_smoothing, ignore_index=ignore_index).backward()
    return z.grad


def grad_with_F(logits, target, label_smoothing=0.0, ignore_index=-100):
    # softmax - q over the kept rows, but the loss is also computed with F.cross_entropy "to check"
    F.cross_entropy(logits, target, label_smoothing=label_smoothing, ignore_index=ignore_index)
    return _grad(logits, target, label_smoothing, ignore_index)


# --- 02.ece ---------------------------------------------------------------------------------------------------


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


# --- 02.fix_head ------------------------------------------------------------------------------------------------


class HeadAsPosted(nn.Module):  # the post's head: input_size outputs, ReLU on them
    def __init__(self, input_size, n_classes):
        super().__init__()
        self.fc = nn.Linear(input_size, input_size)

    def forward(self, x):
        return F.relu(self.fc(x))


class HeadReluKept(nn.Module):  # right size, ReLU still on the logits
    def __init__(self, input_size, n_classes):
        super().__init__()
        self.fc = nn.Linear(input_size, n_classes)

    def forward(self, x):
        return F.relu(self.fc(x))


class HeadSoftmax(HeadReluKept):  # "finally a softmax activation", as the post's text says
    def forward(self, x):
        return torch.softmax(self.fc(x), dim=1)


class HeadSigmoid(HeadReluKept):
    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class HeadNoBias(HeadReluKept):
    def __init__(self, input_size, n_classes):
        super().__init__(input_size, n_classes)
        self.fc = nn.Linear(input_size, n_classes, bias=False)

    def forward(self, x):
        return self.fc(x)


class HeadTwoLayers(nn.Module):  # keeps the post's hidden layer and adds a classifier after it
    def __init__(self, input_size, n_classes):
        super().__init__()
        self.fc = nn.Linear(input_size, input_size)
        self.out = nn.Linear(input_size, n_classes)

    def forward(self, x):
        return self.out(F.relu(self.fc(x)))


MUTANTS = {
    "02.cross_entropy": {"no label smoothing": Mutant(ce_no_smoothing, "label_smoothing=0.1"),
                         "ignored rows in the mean": Mutant(ce_ignored_rows_in_mean, "ignored"),
                         "F.cross_entropy": Mutant(ce_F, "not allow"),
                         "log of softmax": Mutant(ce_log_of_softmax, "nan/inf")},
    "02.ce_grad": {"unstable softmax": Mutant(grad_unstable, "nan/inf"),
                   "gradient of the sum": Mutant(grad_of_sum, "mean"),
                   "divides by all rows": Mutant(grad_divides_by_all_rows, "ignored"),
                   "no label smoothing": Mutant(grad_no_smoothing, "label smoothing"),
                   "smoothing over the other classes only": grad_smooths_other_classes,
                   "gradient on ignored rows": Mutant(grad_ignored_rows_too, "zero gradient"),
                   "autograd": Mutant(grad_autograd, "calls"),
                   "calls F.cross_entropy": Mutant(grad_with_F, "not allow")},
    "02.ece": {"unweighted mean of bins": ece_unweighted, "confidence of the label": ece_label_confidence,
               "bins [lo, hi)": Mutant(ece_bins_closed_left, "0.5")},
    "02.fix_head": {"the post's head": Mutant(HeadAsPosted, "one logit per class"),
                    "ReLU kept": Mutant(HeadReluKept, "relu"),
                    "softmax on the logits": Mutant(HeadSoftmax, "applied twice"),
                    "sigmoid on the logits": Mutant(HeadSigmoid, "probabilities"),
                    "no bias": Mutant(HeadNoBias, "parameters"),
                    "the post's layer kept, a classifier added": Mutant(HeadTwoLayers, "parameters")},
}
