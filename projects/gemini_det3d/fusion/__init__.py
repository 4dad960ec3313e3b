"""Fusion modules of the two-stream backbone, one interface, swapped by config type.

``forward(x_rgb: [B, N, C], x_lidar: [B, N, C], hw_shape=(H, W)) -> (y_rgb, y_lidar)``.
"""
from .add_fusion import AddFusion
from .base import BaseFusion, FusionInputError
from .builder import build_fusion, registered_fusion_types, unknown_fusion_type_problem
from .concat_fusion import ConcatFusion
from .cross_attention_fusion import CrossAttentionFusion
from .gemini_fusion import GeminiFusion
from .no_fusion import NoFusion
from .point_gemini_fusion import PointGeminiFusion
from .token_fusion import TokenFusion

__all__ = [
    'BaseFusion', 'FusionInputError', 'GeminiFusion', 'TokenFusion', 'CrossAttentionFusion',
    'ConcatFusion', 'AddFusion', 'NoFusion', 'PointGeminiFusion', 'build_fusion',
    'registered_fusion_types', 'unknown_fusion_type_problem'
]
