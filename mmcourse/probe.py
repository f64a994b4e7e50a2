"""The one linear-probe fitter: a linear classifier on fixed features, fitted full-batch (chapters 0, 7, 10, 12).

A probe asks "how much of the label can a straight line read off these features?": chapter 0 compares
modalities with it, chapter 12 measures pretrained features for every label budget and seed in a second, and
chapter 10 classifies one modality's embeddings with a probe fitted on another's. Features are standardised
with the statistics of a reference set (by default the training features), the weights start at zero (so the
fit is deterministic) and an L2 penalty keeps it sane when there are fewer samples than dimensions. Two
optimisers: AdamW steps (the default) or L-BFGS iterations with a line search (fast on small problems).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROBE_OPTIMIZERS = ("adamw", "lbfgs")


@dataclass
class LinearProbe:
    """A linear classifier on standardised features: ``probe(x) -> logits``."""

    mean: Tensor
    std: Tensor
    head: nn.Linear

    def __call__(self, x: Tensor) -> Tensor:
        return self.head((x.float() - self.mean) / self.std)

    def predict(self, x: Tensor) -> Tensor:
        """Class indices ``[N]``."""
        with torch.no_grad():
            return self(x).argmax(-1)

    def to_linear(self) -> nn.Linear:
        """One ``nn.Linear`` on the raw features equal to this probe (standardisation folded in): the head
        to start fine-tuning from ("linear probe, then fine-tune")."""
        w = self.head.weight / self.std  # [C, D]
        lin = nn.Linear(w.shape[1], w.shape[0]).to(w.device)
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(self.head.bias - w @ self.mean)
        return lin

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        return (self.predict(x) == y.to(x.device)).float().mean().item()


def linear_probe(x: Tensor, y: Tensor, *, num_classes: int | None = None, weight_decay: float = 1e-3,
                 steps: int = 100, lr: float = 0.05, reference: Tensor | None = None, standardize: bool = True,
                 optimizer: str = "adamw") -> LinearProbe:
    """Fit a linear classifier on features ``x [N, D]`` with labels ``y [N]`` (full batch, on x's device).

    Args:
        num_classes: default ``y.max() + 1``.
        weight_decay: L2 penalty ``weight_decay * ||W||^2`` added to the cross-entropy.
        steps, lr: AdamW steps at ``lr``; with ``optimizer="lbfgs"``, L-BFGS iterations (``lr`` 1 is usual).
        reference: features whose mean and std standardise ``x`` (e.g. all unlabelled training data).
        standardize: False keeps the features as they are (e.g. unit-length embeddings).

    Raises:
        ValueError: shapes that do not match, no samples, or an unknown optimiser.
    """
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"linear_probe expects x [N, D] and y [N], got {list(x.shape)} and {list(y.shape)}")
    if len(x) == 0:
        raise ValueError("a probe needs at least one training sample")
    if optimizer not in PROBE_OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}; use one of {PROBE_OPTIMIZERS}")
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    x, y = x.detach().float(), y.to(x.device)
    ref = x if reference is None else reference.detach().float().to(x.device)
    if standardize and len(ref) > 1:
        mean, std = ref.mean(0), ref.std(0, unbiased=False).clamp_min(1e-3)
    else:
        mean, std = torch.zeros_like(x[0]), torch.ones_like(x[0])
    z = (x - mean) / std
    head = nn.Linear(x.shape[1], c).to(x.device)  # zero-initialised: the fit is deterministic
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)

    def objective() -> Tensor:
        return F.cross_entropy(head(z), y) + weight_decay * head.weight.pow(2).sum()

    with torch.enable_grad():
        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS(head.parameters(), lr=lr, max_iter=steps, history_size=20,
                                    line_search_fn="strong_wolfe")

            def closure() -> Tensor:
                opt.zero_grad()
                loss = objective()
                loss.backward()
                return loss

            opt.step(closure)
        else:
            opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
            for _ in range(steps):
                loss = objective()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    head.requires_grad_(False)
    return LinearProbe(mean, std, head)
