"""``fusion_module(name)``: the diagram of the fusion module ``build_fusion(name, ...)`` builds (chapter 09).

The names are those of ``mmcourse.fusion.registry`` (``identity`` has no diagram: it passes one modality
through, and ``late`` is a model, drawn by ``fusion_stages``).
"""

from __future__ import annotations

from collections.abc import Callable

from mmcourse.diagrams.diagram import Diagram
from mmcourse.diagrams.fusion import concat_fusion, gated_fusion, weighted_fusion
from mmcourse.diagrams.fusion_attention import cross_attention_fusion, transformer_fusion
from mmcourse.diagrams.fusion_products import low_rank_tensor_fusion, tensor_fusion

FUSION_DIAGRAMS: dict[str, Callable[[], Diagram]] = {
    "concat": concat_fusion,
    "weighted": weighted_fusion,
    "gated": gated_fusion,
    "tensor": tensor_fusion,
    "low_rank_tensor": low_rank_tensor_fusion,
    "transformer": transformer_fusion,
    "cross_attention": cross_attention_fusion,
}


def fusion_module(name: str) -> Diagram:
    """The forward pass of fusion module ``name``: one of ``concat``, ``weighted``, ``gated``, ``tensor``,
    ``low_rank_tensor``, ``transformer``, ``cross_attention`` (the names ``build_fusion`` knows).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in FUSION_DIAGRAMS:
        hint = " (late fusion is a model: see fusion_stages())" if name == "late" else ""
        raise ValueError(f"no diagram for fusion {name!r}{hint}; choose one of {', '.join(FUSION_DIAGRAMS)}")
    return FUSION_DIAGRAMS[name]()
