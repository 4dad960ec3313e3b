"""Addition baseline: both streams continue with the per-pixel sum of the two tokens."""
from typing import Optional, Tuple

from torch import Tensor

from mmdet3d.registry import MODELS

from .base import BaseFusion


@MODELS.register_module()
class AddFusion(BaseFusion):
    """``Y1 = Y2 = X1 + X2`` (or their mean with ``average=True``); no parameters.

    Args:
        embed_dims (int): C (only checked against the inputs).
        average (bool): return the mean instead of the sum. The sum doubles the
            features' scale at every fused layer; the mean keeps it.
        init_cfg (dict, optional): unused, for the common interface.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape)`` ->
    ``(y_rgb [B, N, C], y_lidar [B, N, C])``.
    """

    def __init__(self, embed_dims: int, average: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(embed_dims, init_cfg=init_cfg)
        self.average = average

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        fused = x_rgb + x_lidar
        if self.average:
            fused = fused * 0.5
        return fused, fused
