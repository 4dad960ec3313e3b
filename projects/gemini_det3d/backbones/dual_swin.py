"""DualSwinTransformer: an RGB and a LiDAR-grid Swin side by side, fused pixel by pixel.

Each stream is one of mmdet's ``SwinTransformer`` (its ``PatchEmbed``,
``SwinBlockSequence`` stages of ``SwinBlock`` and ``PatchMerging``, output norms); this
module only walks the two in lock step and calls a fusion module between them. The
input is the stacked tensor the data pipeline makes, ``img: [B, 3 + lidar_channels, H,
W]``: channels 0-2 go to the RGB stream, the rest to the LiDAR stream.

Weight sharing (``share_weights=True``, the reference's choice for Swin in
JiaDingCN/GeminiFusion): the streams share their stages (Swin blocks and patch merging,
their LayerNorms included) and keep their own patch embedding (the conv differs anyway,
3 vs ``lidar_channels`` inputs, and the reference keeps a norm per stream there) and
their own output norms. ``share_weights=False``: two independent Swins.

Output: per stage in ``out_indices``, the two streams' normalised features merged by
``out_merge`` as ``[B, C_i, H_i, W_i]`` for an FPN. The reference decodes each stream
separately and averages the two predictions with learned softmax weights; for one FPN
the default merge here is the mean (``'mean'``), with ``'learned'`` (softmax-weighted,
starting as the mean), ``'sum'`` and ``'concat'`` (2 C_i channels) as alternatives.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from ..errors import GeminiInputError
from ..fusion.builder import build_fusion, unknown_fusion_type_problem
from .swin_checkpoint import copy_stream_weights, load_swin_checkpoint

RGB_CHANNELS = 3
FUSION_POSITIONS = ('block', 'stage')
OUT_MERGES = ('mean', 'sum', 'concat', 'learned')


class DualSwinInputError(GeminiInputError):
    """Raised, with one line naming the problem, on a bad input tensor or config."""


@MODELS.register_module()
class DualSwinTransformer(BaseModule):
    """Two-stream Swin Transformer with a fusion module after every block or stage.

    Args:
        lidar_channels (int): channels of the LiDAR grid stacked after RGB (default 4).
        fusion_cfg (dict): the fusion module's config, e.g.
            ``dict(type='GeminiFusion', num_heads=8)``; ``embed_dims`` is filled in with
            the channel count of each fused layer.
        fusion_position (str): ``'block'`` (after every Swin block, as the reference) or
            ``'stage'`` (after the last block of every stage, before patch merging).
        share_weights (bool): share the Swin stages between the streams (see module doc).
        out_merge (str): ``'mean'`` | ``'sum'`` | ``'concat'`` | ``'learned'``.
        embed_dims, patch_size, window_size, mlp_ratio, depths, num_heads, strides,
        out_indices, qkv_bias, qk_scale, patch_norm, drop_rate, attn_drop_rate,
        drop_path_rate, act_cfg, norm_cfg, with_cp, frozen_stages: as mmdet's
            ``SwinTransformer`` (same defaults: Swin-T).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads a
            single-stream Swin checkpoint (mmdet or official key names) into both
            streams; the LiDAR patch-embedding kernel is the RGB one averaged over colour
            and repeated over ``lidar_channels``.

    Shapes: ``forward(img [B, 3 + lidar_channels, H, W])`` -> tuple of
    ``[B, C_i, ceil(H / s_i), ceil(W / s_i)]`` with C_i = embed_dims * 2^i (2x with
    ``'concat'``) and s_i = 4 * 2^i, for i in ``out_indices``.
    """

    def __init__(self,
                 lidar_channels: int = 4,
                 fusion_cfg: dict = dict(type='GeminiFusion', num_heads=8),
                 fusion_position: str = 'block',
                 share_weights: bool = True,
                 out_merge: str = 'mean',
                 embed_dims: int = 96,
                 patch_size: int = 4,
                 window_size: int = 7,
                 mlp_ratio: int = 4,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 strides: Sequence[int] = (4, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 patch_norm: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if fusion_position not in FUSION_POSITIONS:
            raise DualSwinInputError(
                f'DualSwinTransformer: fusion_position must be one of {FUSION_POSITIONS}, '
                f'got {fusion_position!r}')
        if out_merge not in OUT_MERGES:
            raise DualSwinInputError(
                f'DualSwinTransformer: out_merge must be one of {OUT_MERGES}, got {out_merge!r}')
        fusion_problem = (unknown_fusion_type_problem(fusion_cfg.get('type'))
                          if isinstance(fusion_cfg, dict) else f'{fusion_cfg!r} is not a dict')
        if fusion_problem:  # before building two Swins
            raise DualSwinInputError(f'DualSwinTransformer: fusion_cfg.type: {fusion_problem}')
        if lidar_channels < 1:
            raise DualSwinInputError(
                f'DualSwinTransformer: lidar_channels must be >= 1, got {lidar_channels}')
        self.lidar_channels = lidar_channels
        self.fusion_position = fusion_position
        self.share_weights = share_weights
        self.out_merge = out_merge
        self.out_indices = tuple(out_indices)

        swin_args = dict(
            embed_dims=embed_dims, patch_size=patch_size, window_size=window_size,
            mlp_ratio=mlp_ratio, depths=depths, num_heads=num_heads, strides=strides,
            out_indices=out_indices, qkv_bias=qkv_bias, qk_scale=qk_scale,
            patch_norm=patch_norm, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate, act_cfg=act_cfg, norm_cfg=norm_cfg,
            with_cp=with_cp, frozen_stages=frozen_stages)
        self.rgb = SwinTransformer(in_channels=RGB_CHANNELS, **swin_args)
        self.lidar = SwinTransformer(in_channels=lidar_channels, **swin_args)
        if share_weights:
            # The LiDAR stream uses the RGB stream's stages, registered once (under
            # rgb.stages): a module registered under two names would have mmengine's
            # optimiser constructor add its parameters twice. A plain attribute keeps
            # ``self.lidar.stages`` working for mmdet's own code (``_freeze_stages``).
            del self.lidar.stages
            object.__setattr__(self.lidar, 'stages', self.rgb.stages)

        stage_channels = self.rgb.num_features
        self.fusions = ModuleList()
        for stage_index, stage in enumerate(self.rgb.stages):
            num_fused = len(stage.blocks) if fusion_position == 'block' else 1
            self.fusions.append(ModuleList(
                build_fusion(fusion_cfg, stage_channels[stage_index])
                for _ in range(num_fused)))

        if out_merge == 'learned':
            # logits of the two streams' weights per output stage; zeros = the mean
            self.merge_logits = nn.Parameter(torch.zeros(len(self.out_indices), 2))
        scale = 2 if out_merge == 'concat' else 1
        self.num_features = [scale * c for c in stage_channels]

    def _split_streams(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        expected = RGB_CHANNELS + self.lidar_channels
        if img.dim() != 4 or img.shape[1] != expected:
            raise DualSwinInputError(
                f'DualSwinTransformer: expected img [B, {expected}, H, W] (3 RGB + '
                f'{self.lidar_channels} LiDAR channels), got {tuple(img.shape)}')
        return img[:, :RGB_CHANNELS], img[:, RGB_CHANNELS:]

    def _merge(self, out_position: int, x_rgb: Tensor, x_lidar: Tensor) -> Tensor:
        """Two ``[B, N, C]`` -> one ``[B, N, C]`` (``[B, N, 2C]`` for concat)."""
        if self.out_merge == 'mean':
            return (x_rgb + x_lidar) * 0.5
        if self.out_merge == 'sum':
            return x_rgb + x_lidar
        if self.out_merge == 'concat':
            return torch.cat([x_rgb, x_lidar], dim=-1)
        weights = self.merge_logits[out_position].softmax(dim=0)
        return weights[0] * x_rgb + weights[1] * x_lidar

    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        """img: ``[B, 3 + lidar_channels, H, W]`` -> per-stage fused ``[B, C_i, H_i, W_i]``."""
        x_rgb, x_lidar = self._split_streams(img)
        x_rgb, hw_shape = self.rgb.patch_embed(x_rgb)
        x_lidar, _ = self.lidar.patch_embed(x_lidar)
        x_rgb, x_lidar = self.rgb.drop_after_pos(x_rgb), self.lidar.drop_after_pos(x_lidar)

        outs: List[Tensor] = []
        for stage_index, (rgb_stage, lidar_stage) in enumerate(
                zip(self.rgb.stages, self.lidar.stages)):
            fusions = self.fusions[stage_index]
            for block_index, (rgb_block, lidar_block) in enumerate(
                    zip(rgb_stage.blocks, lidar_stage.blocks)):
                x_rgb, x_lidar = rgb_block(x_rgb, hw_shape), lidar_block(x_lidar, hw_shape)
                if self.fusion_position == 'block':
                    x_rgb, x_lidar = fusions[block_index](x_rgb, x_lidar, hw_shape)
            if self.fusion_position == 'stage':
                x_rgb, x_lidar = fusions[0](x_rgb, x_lidar, hw_shape)

            if stage_index in self.out_indices:
                out_rgb = getattr(self.rgb, f'norm{stage_index}')(x_rgb)
                out_lidar = getattr(self.lidar, f'norm{stage_index}')(x_lidar)
                merged = self._merge(self.out_indices.index(stage_index), out_rgb, out_lidar)
                outs.append(merged.transpose(1, 2).reshape(
                    merged.shape[0], merged.shape[2], *hw_shape).contiguous())
            if rgb_stage.downsample is not None:
                x_rgb, next_hw_shape = rgb_stage.downsample(x_rgb, hw_shape)
                x_lidar, _ = lidar_stage.downsample(x_lidar, hw_shape)
                hw_shape = next_hw_shape
        return tuple(outs)

    def pop_auxiliary_losses(self) -> Dict[str, Tensor]:
        """The fusion modules' own losses of the last training forward, summed per name over
        the fused layers (TokenFusion: ``loss_token_l1``); ``{}`` for most fusions."""
        losses: Dict[str, Tensor] = {}
        for stage_fusions in self.fusions:
            for fusion in stage_fusions:
                for name, value in fusion.pop_auxiliary_losses().items():
                    losses[name] = losses[name] + value if name in losses else value
        return losses

    def init_weights(self) -> None:
        """From scratch (mmdet's Swin init) or from a single-stream Swin checkpoint."""
        init_cfg = self.init_cfg or {}
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self.load_single_stream_checkpoint(init_cfg['checkpoint'])
            self._is_init = True
        else:
            super().init_weights()

    def load_single_stream_checkpoint(self, path: str) -> None:
        """Load one Swin's weights into both streams: mmdet's loader fills the RGB stream,
        the LiDAR stream copies it (patch-embedding kernel adapted); log what did not fit."""
        report = load_swin_checkpoint(self.rgb, path)
        copy_stream_weights(self.rgb, self.lidar)
        lidar_keys = self.lidar.state_dict().keys()
        missing = [f'{k} [lidar, rgb]' if k in lidar_keys else f'{k} [rgb]'
                   for k in report.missing]
        new_count = sum(not k.startswith(('rgb.', 'lidar.')) for k in self.state_dict())
        lines = [f'DualSwinTransformer: loaded single-stream Swin weights from {path} into '
                 f'both streams ({new_count} fusion/merge tensors start from their own init)']
        level = logging.INFO
        for title, keys in (('missing in the checkpoint', missing),
                            ('in the checkpoint but not in the model', report.unexpected),
                            ('shape mismatch, not loaded', report.mismatched)):
            if keys:
                level = logging.WARNING
                lines.append(f'  {title} ({len(keys)}): ' + ', '.join(sorted(keys)))
        print_log('\n'.join(lines), logger='current', level=level)
