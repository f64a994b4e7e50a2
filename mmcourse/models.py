"""The multimodal contract: ``Batch`` and ``MultimodalModel`` (encoders → fusion → heads), plus late fusion.

Every chapter speaks it: a batch is a dict of modality tensors plus a dict of task targets; a model maps
``inputs`` (and optional ``present`` masks) to a dict of logits, one entry per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

MODALITIES = ("image", "text", "audio", "video")


@dataclass
class Batch:
    """One batch: ``inputs[modality]``, ``targets[task]`` and optional ``present[modality]`` (bool ``[B]``)."""

    inputs: dict[str, Tensor]
    targets: dict[str, Tensor]
    present: dict[str, Tensor] | None = None

    def __len__(self) -> int:
        for t in (*self.inputs.values(), *self.targets.values()):
            return int(t.shape[0])
        return 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device``."""
        move = lambda d: {k: v.to(device, non_blocking=non_blocking) for k, v in d.items()}  # noqa: E731
        return Batch(move(self.inputs), move(self.targets), None if self.present is None else move(self.present))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_modalities(names: Mapping[str, object], known: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise KeyError(f"{what} {unknown} has no encoder; this model has encoders for {sorted(known)}")


class MultimodalModel(nn.Module):
    """Encoders → fusion → heads. ``model(inputs, present)`` returns ``{task: logits [B, C]}``.

    Args:
        encoders: one module per modality mapping its tensor to ``[B, D_m]`` (and, for attention-based
            fusion, ``tokens(x) -> [B, L, D_m]``).
        fusion: maps ``{modality: features}`` and ``present`` to ``[B, D_fused]``. If it has an attribute
            ``uses_tokens = True`` it receives the encoders' ``tokens()`` instead of pooled features.
        heads: one module per task mapping ``[B, D_fused]`` to logits.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module, heads: Mapping[str, nn.Module]):
        super().__init__()
        if not encoders:
            raise ValueError("MultimodalModel needs at least one encoder, e.g. {'image': SmallCNN(...)}")
        if not heads:
            raise ValueError("MultimodalModel needs at least one head, e.g. {'shape': nn.Linear(d, 10)}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.heads = nn.ModuleDict(dict(heads))

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality features (or tokens), in sorted modality order."""
        _check_modalities(inputs, self.encoders, "input modality")
        if not inputs:
            raise ValueError(f"no input modality given; this model expects some of {sorted(self.encoders)}")
        use_tokens = bool(getattr(self.fusion, "uses_tokens", False))
        feats = {}
        for m in sorted(inputs):
            enc = self.encoders[m]
            feats[m] = enc.tokens(inputs[m]) if use_tokens else enc(inputs[m])
        return feats

    def forward(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
                ) -> dict[str, Tensor]:
        fused = self.fusion(self.encode(inputs), present)  # [B, D_fused]
        return {task: head(fused) for task, head in self.heads.items()}


class LateFusionModel(nn.Module):
    """Late fusion: each modality has its own encoder and heads; per-task logits are combined.

    ``combine`` is ``"mean_logits"`` (average of logits) or ``"mean_probs"`` (log of the averaged
    probabilities). Missing modalities (absent keys, or ``present`` False) are left out of the average.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], heads: Mapping[str, Mapping[str, nn.Module]],
                 combine: str = "mean_logits"):
        super().__init__()
        if combine not in ("mean_logits", "mean_probs"):
            raise ValueError(f"combine={combine!r}; use 'mean_logits' or 'mean_probs'")
        missing = sorted(set(encoders) ^ set(heads))
        if missing:
            raise ValueError(f"encoders and heads must name the same modalities; mismatch: {missing}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.heads = nn.ModuleDict({m: nn.ModuleDict(dict(h)) for m, h in heads.items()})
        self.combine = combine

    def per_modality(self, inputs: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        """``{modality: {task: logits}}`` for each given modality."""
        _check_modalities(inputs, self.encoders, "input modality")
        out = {}
        for m in sorted(inputs):
            z = self.encoders[m](inputs[m])
            out[m] = {t: h(z) for t, h in self.heads[m].items()}
        return out

    def forward(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
                ) -> dict[str, Tensor]:
        per = self.per_modality(inputs)
        if not per:
            raise ValueError(f"no input modality given; this model expects some of {sorted(self.encoders)}")
        tasks = next(iter(per.values())).keys()
        result = {}
        for t in tasks:
            stack = torch.stack([per[m][t] for m in per])  # [M, B, C]
            if self.combine == "mean_probs":
                stack = stack.log_softmax(-1)
            w = torch.ones(stack.shape[:2], device=stack.device, dtype=stack.dtype)  # [M, B]
            if present is not None:
                w = torch.stack([present[m].to(stack.dtype) if m in present else w[0] for m in per])
            w = w / w.sum(0, keepdim=True).clamp_min(1e-6)
            fused = (w.unsqueeze(-1) * (stack.exp() if self.combine == "mean_probs" else stack)).sum(0)
            result[t] = fused.clamp_min(1e-12).log() if self.combine == "mean_probs" else fused
        return result
