"""Modality dropout inside the model: hide whole modalities of random samples while training (chapter 9).

A model trained with every modality always present learns to lean on the strongest one and falls apart when
it is missing at test time. Modality dropout hides each modality of each training sample with probability
``p`` (keeping at least one per sample), so the fusion learns to use whatever is there. The engine does this
on the inputs (``fit(..., modality_dropout=p)``, see ``mmcourse.engine.batches.modality_dropout``);
``ModalityDropout`` does it on the encoded features, inside ``MultimodalModel``, by wrapping a fusion module
and handing it a ``present`` mask. It does nothing in ``eval()`` mode.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mmcourse.batch import keep_mask, present_matrix

__all__ = ["ModalityDropout", "keep_mask"]


class ModalityDropout(nn.Module):
    """Wrap ``fusion``: in training mode, hide each present modality of each sample with probability ``p``.

    ``out_dim`` and ``uses_tokens`` are those of the wrapped fusion, which must handle ``present``.
    """

    def __init__(self, fusion: nn.Module, p: float = 0.3):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"modality dropout probability must be in [0, 1), got {p}")
        self.fusion, self.p = fusion, p
        self.out_dim = getattr(fusion, "out_dim", None)
        self.uses_tokens = bool(getattr(fusion, "uses_tokens", False))

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        if not self.training or self.p == 0.0 or len(feats) < 2:
            return self.fusion(feats, present)
        names = sorted(feats)
        ref = feats[names[0]]
        old = present or {}
        avail = present_matrix(names, old, ref.shape[0], ref.device)  # [B, M]
        keep = keep_mask(ref.shape[0], len(names), self.p, available=avail)  # [B, M]
        return self.fusion(feats, {**old, **{m: keep[:, j] for j, m in enumerate(names)}})
