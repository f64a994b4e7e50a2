"""Wrong answers for chapter 11's checks (two-head model, uncertainty weighting, dynamic weight average)."""

import torch
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


def uw_detached_losses(losses, log_vars):
    return (torch.exp(-log_vars) * losses.detach() + log_vars / 2).sum()


def uw_detached_s(losses, log_vars):
    s = log_vars.detach()
    return (torch.exp(-s) * losses + s / 2).sum()


def uw_full_s(losses, log_vars):
    return (torch.exp(-log_vars) * losses + log_vars).sum()


def uw_exp_plus(losses, log_vars):
    return (torch.exp(log_vars) * losses + 0.5 * log_vars).sum()


def uw_mean(losses, log_vars):
    return (torch.exp(-log_vars) * losses + 0.5 * log_vars).mean()


def dwa_inverted_ratio(prev, prev2, temperature):
    return len(prev) * torch.softmax((prev2 / prev) / temperature, dim=0)


def dwa_no_task_count(prev, prev2, temperature):
    return torch.softmax((prev / prev2) / temperature, dim=0)


def dwa_temperature_multiplies(prev, prev2, temperature):
    return len(prev) * torch.softmax((prev / prev2) * temperature, dim=0)


MUTANTS = {
    "11.two_head_model": {"trunk once per head": Mutant(TrunkPerHead, "trunk 2 times"),
                          "heads in a plain dict": Mutant(HeadsInPlainDict, "81 parameters"),
                          "trunk detached": Mutant(DetachedTrunk, "reach the shared trunk"),
                          "a list of logits": Mutant(ListOutput, "dict")},
    "11.uncertainty_weighting": {"losses detached": Mutant(uw_detached_losses, "detach the losses"),
                                 "s detached": Mutant(uw_detached_s, "gradient with respect to s"),
                                 "regulariser s": uw_full_s, "exp(+s)": uw_exp_plus, "mean": uw_mean},
    "11.dwa_weights": {"inverted ratio": dwa_inverted_ratio, "sums to 1": dwa_no_task_count,
                       "temperature multiplies": dwa_temperature_multiplies},
}
