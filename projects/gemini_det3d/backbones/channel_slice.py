"""Run any image backbone on a slice of the stacked input's channels.

The data pipeline always stacks RGB and the LiDAR grid into one tensor (so every config
shares one pipeline); the RGB-only ablation feeds just channels 0-2 to a single-stream
Swin (mmdet's), the LiDAR-image-only one channels 3.. .

``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` on the wrapper loads a Swin checkpoint
into the wrapped Swin the way ``DualSwinTransformer`` loads its streams (official or mmdet key
names), so the RGB-only ablation takes the same option, ``model.img_backbone.init_cfg``, as the
two-stream configs.
"""
import logging
from typing import Sequence

from mmdet.models.backbones.swin import SwinTransformer
from mmdet3d.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from .swin_checkpoint import load_swin_checkpoint


@MODELS.register_module()
class ChannelSliceBackbone(BaseModule):
    """``backbone(img[:, channels])``.

    Args:
        backbone (dict): config of the wrapped backbone (e.g. ``mmdet.SwinTransformer``).
        channels (Sequence[int]): which input channels it sees, e.g. ``(0, 1, 2)`` for RGB.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads a Swin
            checkpoint into a wrapped ``SwinTransformer``; otherwise the wrapped backbone's own.

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
        init_cfg = self.init_cfg or {}
        if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
            self.backbone.init_weights()
            return
        path = init_cfg['checkpoint']
        if not isinstance(self.backbone, SwinTransformer):
            raise TypeError(f'ChannelSliceBackbone: init_cfg Pretrained loads Swin checkpoints; '
                            f'the wrapped backbone is a {type(self.backbone).__name__}')
        report = load_swin_checkpoint(self.backbone, path)
        lines = [f'ChannelSliceBackbone: loaded Swin weights from {path}']
        for title, keys in (('missing in the checkpoint', report.missing),
                            ('in the checkpoint but not in the model', report.unexpected),
                            ('shape mismatch, not loaded', report.mismatched)):
            if keys:
                lines.append(f'  {title} ({len(keys)}): ' + ', '.join(sorted(keys)))
        print_log('\n'.join(lines), logger='current',
                  level=logging.WARNING if len(lines) > 1 else logging.INFO)
        self._is_init = True
