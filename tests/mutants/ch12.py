"""Wrong answers for chapter 12's checks (freezing by prefix, a linear probe, discriminative learning rates)."""

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


def freeze_startswith(model, prefix):
    names = [n for n, _ in model.named_parameters() if n.startswith(prefix)]  # '1' also freezes '10.*', '11.*'
    if not names:
        raise ValueError(f"prefix {prefix!r} matches no parameter")
    for n, p in model.named_parameters():
        if n in names:
            p.requires_grad_(False)
    return names


def freeze_silent_on_typo(model, prefix):
    names = [n for n, _ in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]
    for n, p in model.named_parameters():
        if n in names:
            p.requires_grad_(False)
    return names


def freeze_returns_nothing(model, prefix):
    freeze_silent_on_typo(model, prefix)


def _train(x, y, num_classes, steps, lr):
    head = nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


def probe_no_standardisation(x, y, num_classes, steps=200, lr=0.1):
    return _train(x, y, num_classes, steps, lr)


def probe_not_folded(x, y, num_classes, steps=200, lr=0.1):
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    return _train((x - mean) / std, y, num_classes, steps, lr)  # expects standardised input, gets raw features


def probe_global_statistics(x, y, num_classes, steps=200, lr=0.1):
    mean, std = x.mean(), x.std()
    head = _train((x - mean) / std, y, num_classes, steps, lr)
    out = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        out.weight.copy_(head.weight / std)
        out.bias.copy_(head.bias - (head.weight / std).sum(1) * mean)
    return out


def _groups(model, layers, lr, decay, exponent, rest_lr):
    n = len(layers)
    groups, used = [], set()
    for i, prefix in enumerate(layers):
        ps = [(name, p) for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + ".")]
        used.update(name for name, _ in ps)
        groups.append({"params": [p for _, p in ps], "lr": lr * decay ** exponent(n, i)})
    rest = [p for name, p in model.named_parameters() if name not in used]
    if rest and rest_lr is not None:
        groups.append({"params": rest, "lr": rest_lr(lr, decay)})
    return groups


def groups_reversed(model, layers, lr, decay):
    return _groups(model, layers, lr, decay, lambda n, i: i + 1, lambda lr, d: lr)


def groups_no_head(model, layers, lr, decay):
    return _groups(model, layers, lr, decay, lambda n, i: n - i, None)


def groups_head_decayed(model, layers, lr, decay):
    return _groups(model, layers, lr, decay, lambda n, i: n - i, lambda lr, d: lr * d)


MUTANTS = {
    "12.freeze": {"startswith without the dot": Mutant(freeze_startswith, "not '10.*'"),
                  "no error for a typo": Mutant(freeze_silent_on_typo, "valueerror"),
                  "returns nothing": freeze_returns_nothing},
    "12.linear_probe": {"no standardisation": Mutant(probe_no_standardisation, "standardise"),
                        "standardisation not folded": probe_not_folded,
                        "one mean and std for all features": Mutant(probe_global_statistics, "standardise")},
    "12.discriminative_lr_groups": {"decay reversed": groups_reversed, "no head group": Mutant(groups_no_head,
                                                                                                  "no group"),
                                    "head decayed": groups_head_decayed},
}
