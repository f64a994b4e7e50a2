"""``MultimodalModel`` (encoders → fusion → heads) and ``LateFusionModel`` (per-modality heads, logits combined).

Every chapter speaks the contract: a batch is a dict of modality tensors plus a dict of task targets; a model
maps ``inputs`` (and optional ``present`` masks) to a dict of logits, one entry per task. Parts are passed in
(as in TorchMultimodal's ``LateFusion``); ``mmcourse.models.build_model`` assembles the course's variants.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.batch import MODALITIES, Batch, UnknownNameError, check_inputs, check_present
from mmcourse.layers.params import count_parameters

__all__ = ["MODALITIES", "Batch", "LateFusionModel", "MultimodalModel", "count_parameters"]


def _check_modalities(names: Mapping[str, object], known: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise UnknownNameError(f"{what} {unknown} has no encoder; this model has encoders for {sorted(known)}")


class MultimodalModel(nn.Module):
    """Encoders → fusion → heads. ``model(inputs, present)`` returns ``{task: logits [B, C]}``.

    Args:
        encoders: one module per modality mapping its tensor to ``[B, D_m]`` (and, for attention-based
            fusion, ``tokens(x) -> [B, L, D_m]``).
        fusion: maps ``{modality: features}`` and ``present`` to ``[B, D_fused]``.
        heads: one module per task mapping ``[B, D_fused]`` to logits.
        tokens: feed the fusion the encoders' ``tokens()`` ``[B, L, D]`` instead of pooled ``[B, D]`` features;
            default: what the fusion declares in its ``uses_tokens`` attribute (the ``Fusion`` protocol),
            decided once here and kept in ``self.tokens``.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module, heads: Mapping[str, nn.Module], *,
                 tokens: bool | None = None):
        super().__init__()
        if not encoders:
            raise ValueError("MultimodalModel needs at least one encoder, e.g. {'image': SmallCNN(...)}")
        if not heads:
            raise ValueError("MultimodalModel needs at least one head, e.g. {'shape': nn.Linear(d, 10)}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.heads = nn.ModuleDict(dict(heads))
        self.tokens = bool(getattr(fusion, "uses_tokens", False)) if tokens is None else bool(tokens)

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality features (or tokens), in sorted modality order."""
        _check_modalities(inputs, self.encoders, "input modality")
        if not inputs:
            raise ValueError(f"no input modality given; this model expects some of {sorted(self.encoders)}")
        feats = {}
        for m in sorted(inputs):
            enc = self.encoders[m]
            feats[m] = enc.tokens(inputs[m]) if self.tokens else enc(inputs[m])
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
        n = check_inputs(inputs, allow_empty=True)  # one batch size and device for every modality
        if present is not None and n is not None:  # bool [B] masks of this model's modalities
            check_present(present, list(self.encoders), batch=n, device=next(iter(inputs.values())).device)
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
