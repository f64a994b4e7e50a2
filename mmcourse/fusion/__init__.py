"""Fusion modules: ``{modality: [B, D_m]}`` plus ``present`` → ``[B, D_fused]`` (chapter 8)."""

from mmcourse.fusion.basic import ConcatFusion, IdentityFusion

__all__ = ["ConcatFusion", "IdentityFusion"]
