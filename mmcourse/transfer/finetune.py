"""Fine-tuning a pretrained model: discriminative (layer-wise decayed) learning rates and gradual unfreezing.

Chapter 12 compares, on the same target task, training from scratch, a linear probe, full fine-tuning (every
parameter at one learning rate), and fine-tuning with smaller learning rates for the layers nearest the
input, which hold the most general features (discriminative learning rates, Howard & Ruder, 2018).
``GradualUnfreezing`` thaws the network from the top down, one stage per epoch (same paper). Both plug into
``fit``: the groups as ``optimizer=torch.optim.AdamW(groups)``, the thawing as a callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from mmcourse.transfer.freeze import Selector, freeze, select_parameters, unfreeze


def discriminative_param_groups(model: nn.Module, layers: Sequence[Selector | Sequence[Selector]], *,
                                lr: float, decay: float = 0.5, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimiser param groups whose learning rate shrinks by ``decay`` per layer going down to the input.

    ``layers`` lists the pretrained stages from the input upwards (name patterns or modules, as in
    :func:`~mmcourse.transfer.freeze.select_parameters`). Every parameter not in ``layers`` (the new head,
    typically) is the top group with learning rate ``lr``; ``layers[-1]`` gets ``lr * decay``,
    ``layers[-2]`` gets ``lr * decay**2``, … Each group has a ``name`` key for logging. Frozen parameters are
    included, so that unfreezing them later trains them at their group's rate.

    Raises:
        ValueError: ``decay`` not in (0, 1], a layer matches nothing, or a parameter is in two layers.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    params = dict(model.named_parameters())
    owner: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for n in select_parameters(model, layer):
            if n in owner:
                raise ValueError(f"parameter {n!r} is in layers {owner[n]} and {i}; layers must not overlap")
            owner[n] = i
    groups = []
    depth = len(layers)
    for i in range(depth):
        names = [n for n, j in owner.items() if j == i]
        groups.append({"params": [params[n] for n in names], "lr": lr * decay ** (depth - i),
                       "weight_decay": weight_decay, "name": f"layer{i}"})
    rest = [p for n, p in params.items() if n not in owner]
    if rest:
        groups.append({"params": rest, "lr": lr, "weight_decay": weight_decay, "name": "top"})
    return groups


class GradualUnfreezing:
    """A ``fit`` callback: freeze ``stages`` now; unfreeze one more stage every ``every`` epochs, top-most first.

    ``stages`` is ordered from the output down to the input (e.g. ``["encoders.image.pool",
    "encoders.image.features.4", ...]``); after epoch ``k * every`` the first ``k`` stages are trainable
    (``unfrozen`` says how many). fit's optimiser holds the frozen parameters too, so a thawed stage trains
    from then on; its state is checkpointed, so a resumed run thaws the same stages.
    """

    def __init__(self, model: nn.Module, stages: Sequence[Selector | Sequence[Selector]], every: int = 1):
        if not stages:
            raise ValueError("GradualUnfreezing needs at least one stage")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.model, self.stages, self.every, self.unfrozen = model, list(stages), every, 0
        for s in self.stages:
            freeze(model, s)

    def thaw(self, epoch: int) -> None:
        """Unfreeze the stages due after ``epoch`` completed epochs."""
        want = min(epoch // self.every, len(self.stages))
        while self.unfrozen < want:
            unfreeze(self.model, self.stages[self.unfrozen])
            self.unfrozen += 1

    def on_epoch_end(self, state: Any, row: Any) -> None:
        self.thaw(state.epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"unfrozen": self.unfrozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        want = int(state["unfrozen"])
        while self.unfrozen < want:
            unfreeze(self.model, self.stages[self.unfrozen])
            self.unfrozen += 1
