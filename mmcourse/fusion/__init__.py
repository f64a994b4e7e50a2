"""Fusion modules: ``{modality: [B, D_m]}`` (or tokens) plus ``present`` → ``[B, D_fused]`` (chapter 9)."""

from mmcourse.fusion.basic import ConcatFusion, IdentityFusion
from mmcourse.fusion.cross_attention import CrossAttentionFusion
from mmcourse.fusion.dropout import ModalityDropout, keep_mask
from mmcourse.fusion.gated import GatedFusion
from mmcourse.fusion.registry import FUSIONS, build_fusion, fusion_names
from mmcourse.fusion.shared import SharedEncoder, shared_encoders
from mmcourse.fusion.tensor import LowRankTensorFusion, TensorFusion
from mmcourse.fusion.transformer import TransformerFusion
from mmcourse.fusion.weighted import WeightedFusion

__all__ = ["FUSIONS", "ConcatFusion", "CrossAttentionFusion", "GatedFusion", "IdentityFusion",
           "LowRankTensorFusion", "ModalityDropout", "SharedEncoder", "TensorFusion", "TransformerFusion",
           "WeightedFusion", "build_fusion", "fusion_names", "keep_mask", "shared_encoders"]
