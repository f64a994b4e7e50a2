"""Build a fusion module by name: ``build_fusion("gated", {"image": 64, "text": 64}, dim=64)`` (chapter 9).

Late fusion is not a fusion module — each modality keeps its own heads and their logits are combined — so it
lives in ``mmcourse.models.LateFusionModel``; ``compare_fusions`` accepts the name ``"late"`` for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from mmcourse.fusion.basic import ConcatFusion, IdentityFusion
from mmcourse.fusion.cross_attention import CrossAttentionFusion
from mmcourse.fusion.gated import GatedFusion
from mmcourse.fusion.tensor import LowRankTensorFusion, TensorFusion
from mmcourse.fusion.transformer import TransformerFusion
from mmcourse.fusion.weighted import WeightedFusion


def _identity(dims: Mapping[str, int], **kw: Any) -> IdentityFusion:
    if len(dims) != 1:
        raise ValueError(f"'identity' fusion is for one modality, got {sorted(dims)}")
    return IdentityFusion(dim=next(iter(dims.values())), **kw)


FUSIONS: dict[str, Callable[..., nn.Module]] = {
    "identity": _identity,
    "concat": ConcatFusion,
    "weighted": WeightedFusion,
    "gated": GatedFusion,
    "tensor": TensorFusion,
    "low_rank_tensor": LowRankTensorFusion,
    "transformer": TransformerFusion,
    "cross_attention": CrossAttentionFusion,
}


def fusion_names() -> list[str]:
    """The names ``build_fusion`` knows."""
    return list(FUSIONS)


def build_fusion(name: str, dims: Mapping[str, int], **kwargs: Any) -> nn.Module:
    """The fusion module called ``name`` for modality widths ``dims``; ``kwargs`` go to its constructor.

    Raises:
        ValueError: for an unknown name (listing the valid ones) or arguments the module does not take.
    """
    if name == "late":
        raise ValueError("late fusion is a model, not a fusion module: use mmcourse.models.LateFusionModel "
                         "(compare_fusions accepts 'late')")
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; valid names: {', '.join(FUSIONS)}")
    try:
        return FUSIONS[name](dims, **kwargs)
    except TypeError as e:
        raise ValueError(f"fusion {name!r} does not accept the arguments {sorted(kwargs)}: {e}") from e
