"""Run any image backbone on a slice of the stacked input's channels.

The data pipeline always stacks RGB and the LiDAR grid into one tensor (so every config
shares one pipeline); the RGB-only ablation feeds just channels 0-2 to a single-stream
Swin (mmdet's), the LiDAR-image-only one channels 3.. .
"""
from typing import Sequence

from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor


@MODELS.register_module()
class ChannelSliceBackbone(BaseModule):
    """``backbone(img[:, channels])``.

    Args:
        backbone (dict): config of the wrapped backbone (e.g. ``mmdet.SwinTransformer``).
        channels (Sequence[int]): which input channels it sees, e.g. ``(0, 1, 2)`` for RGB.

    Shapes: ``forward(img [B, C_all, H, W])`` -> the wrapped backbone's outputs for
    ``[B, len(channels), H, W]``.
    """

    def __init__(self, backbone: dict, channels: Sequence[int] = (0, 1, 2), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.channels = list(channels)
        self.backbone = MODELS.build(backbone)

    def forward(self, img: Tensor):
        if img.shape[1] <= max(self.channels):
            raise ValueError(f'ChannelSliceBackbone: input has {img.shape[1]} channels, '
                             f'asked for channels {self.channels}')
        return self.backbone(img[:, self.channels])

    def init_weights(self):
        self.backbone.init_weights()
