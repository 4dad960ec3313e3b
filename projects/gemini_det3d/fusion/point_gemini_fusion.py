"""Point-level GeminiFusion: the authors' MVX-Net variant, inside the voxel encoder.

mmdet3d's ``PointFusion`` samples the image features at each LiDAR point's pixel and adds
them to the point's features (``relu(img_transform(img) + pts_transform(pts))``). Here the
two per-point tokens -- the point's own feature and its projected image feature -- are
instead fused by :class:`GeminiFusion`, each point being one "pixel" of a 1 x N grid, so
every point attends only to itself and its own image feature (cost linear in points).
Sampling (multi-level, with the 3D augmentations undone) is PointFusion's, reused as is.
"""
from typing import List

import torch.nn.functional as F
from mmdet3d.models.layers.fusion_layers import PointFusion
from mmdet3d.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class PointGeminiFusion(PointFusion):
    """``PointFusion`` whose final sum is replaced by a GeminiFusion of the two tokens.

    Args:
        num_heads (int): GeminiFusion heads (``out_channels`` must be divisible by it).
        merge (str): ``'sum'`` (default) or ``'mean'`` of the two fused tokens.
        **kwargs: ``PointFusion``'s arguments (img_channels, pts_channels, mid_channels,
            out_channels, img_levels, ...).

    Shapes: ``forward(img_feats [B, C_l, H_l, W_l] per level, pts [N_b, 3] per sample,
    pts_feats [sum N_b, pts_channels], img_metas)`` -> ``[sum N_b, out_channels]``.
    """

    def __init__(self, num_heads: int = 8, merge: str = 'sum', **kwargs):
        super().__init__(**kwargs)
        if merge not in ('sum', 'mean'):
            raise ValueError(f'PointGeminiFusion: merge must be sum or mean, got {merge!r}')
        self.merge = merge
        out_channels = self.pts_transform[0].out_features
        self.gemini = MODELS.build(
            dict(type='GeminiFusion', embed_dims=out_channels, num_heads=num_heads))

    def forward(self, img_feats: List[Tensor], pts: List[Tensor], pts_feats: Tensor,
                img_metas: List[dict]) -> Tensor:
        img_pts = self.img_transform(self.obtain_mlvl_feats(img_feats, pts, img_metas))
        if self.training and self.dropout_ratio > 0:
            img_pts = F.dropout(img_pts, self.dropout_ratio)
        pts_tokens = self.pts_transform(pts_feats)
        # all points of the batch as one 1 x N grid: GeminiFusion is per token, so mixing
        # samples in one row changes nothing
        y_pts, y_img = self.gemini(pts_tokens[None], img_pts[None], (1, pts_tokens.shape[0]))
        fused = y_pts[0] + y_img[0]
        if self.merge == 'mean':
            fused = fused / 2
        if self.activate_out:
            fused = F.relu(fused)
        if self.fuse_out:
            fused = self.fuse_conv(fused)
        return fused
