"""Concatenation baseline: per pixel, concatenate both streams' tokens and project to C.

``Y1 = [X1, X2] W1 + b1``, ``Y2 = [X2, X1] W2 + b2`` (one 2C -> C linear layer per
stream). Each W starts as ``[I | 0]`` (bias 0), so the module starts as "no fusion" and
a backbone loaded from single-stream weights starts from their features; the zero half
still receives gradients and learns how much of the other stream to mix in.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from .base import BaseFusion


def _identity_on_first_half(layer: nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    with torch.no_grad():
        layer.weight[:, :layer.out_features].copy_(torch.eye(layer.out_features))


@MODELS.register_module()
class ConcatFusion(BaseFusion):
    """Per-pixel concat + linear, one projection per stream.

    Args:
        embed_dims (int): C.
        init_cfg (dict, optional): mmengine initialisation config.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape)`` ->
    ``(y_rgb [B, N, C], y_lidar [B, N, C])``.
    """

    def __init__(self, embed_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(embed_dims, init_cfg=init_cfg)
        self.rgb_proj = nn.Linear(2 * embed_dims, embed_dims)
        self.lidar_proj = nn.Linear(2 * embed_dims, embed_dims)
        _identity_on_first_half(self.rgb_proj)
        _identity_on_first_half(self.lidar_proj)

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        y_rgb = self.rgb_proj(torch.cat([x_rgb, x_lidar], dim=-1))
        y_lidar = self.lidar_proj(torch.cat([x_lidar, x_rgb], dim=-1))
        return y_rgb, y_lidar
