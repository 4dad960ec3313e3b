"""No fusion: the streams stay apart inside the backbone (they meet only at its output)."""
from typing import Optional, Tuple

from torch import Tensor

from mmdet3d.registry import MODELS

from .base import BaseFusion


@MODELS.register_module()
class NoFusion(BaseFusion):
    """Returns its inputs unchanged (the same tensor objects); no parameters.

    Args:
        embed_dims (int): C (only checked against the inputs).
        init_cfg (dict, optional): unused, for the common interface.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape)`` ->
    ``(x_rgb, x_lidar)``.
    """

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        return x_rgb, x_lidar
