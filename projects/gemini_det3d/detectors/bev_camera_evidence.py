"""``BEVCameraEvidence``: the camera's per-point class scores laid on the 3D head's BEV map.

Why: PointFusion and point painting hand the image evidence to the point branch at its first
layer; it then goes through the voxel encoder, the sparse encoder and SECOND before the head
reads it, and within the demo's budget the head did not act on it (camera-swap drop under 4
AP summed, docs/experiments.md). CLOCs (Pang et al., IROS 2020) fuses the camera late, next to
the 3D candidates, where a few weights decide how far the camera's word counts. This module
puts the camera's answer beside the BEV features the head's 1 x 1 convolutions read: each
anchor's classifier sees, in its own cell and around it, what the camera says stands there.

What, for every BEV cell of the head's ``[B, C, H, W]`` map (``H`` along y, ``W`` along x,
over ``point_cloud_range``):

* the mean of the class scores (background, K classes) of the points in the cell that lie in
  the picture (``K + 1`` channels);
* whether the cell has such a point (1 channel: empty and out-of-picture cells read 0
  everywhere, which the head can tell from a cell the camera calls background);
* the largest of those cell means over the ``pool_size`` x ``pool_size`` cells around it, per
  labelled class (``K`` channels): the head predicts a box from its centre cell, where a car's
  LiDAR points (its near side) often are not.

``out_channels = 2 K + 2``. The scores come in detached (``point_class_scores``): the image
classifier learns from its own loss, the head learns how much to trust it.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class BEVCameraEvidence(nn.Module):
    """Per-point camera class scores -> ``[B, 2 K + 2, H, W]`` BEV evidence (module docstring).

    Args:
        point_cloud_range (sequence of 6 floats): x_min, y_min, z_min, x_max, y_max, z_max of
            the BEV map (the detector's voxel grid).
        num_classes (int): K, labelled classes.
        pool_size (int): odd neighbourhood, in cells, of the pooled class channels.
    """

    def __init__(self, point_cloud_range: Sequence[float], num_classes: int = 3,
                 pool_size: int = 5):
        super().__init__()
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f'pool_size must be a positive odd number of cells, got {pool_size}')
        if len(point_cloud_range) != 6:
            raise ValueError(f'point_cloud_range needs 6 numbers, got {list(point_cloud_range)}')
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.num_classes = num_classes
        self.pool_size = pool_size

    @property
    def out_channels(self) -> int:
        return 2 * self.num_classes + 2

    def forward(self, points: List[Tensor], scores: List[Tensor], bev_shape: Sequence[int]
                ) -> Tensor:
        """``[B, 2 K + 2, H, W]``.

        Args:
            points: B ``[N_i, >=2]`` LiDAR points (x, y first) in the frame of the BEV map.
            scores: B ``[N_i, K + 1]`` class scores at the points; all zeros for a point
                outside the picture (``point_class_scores``), softmax rows otherwise.
            bev_shape: (H, W) of the head's map.
        """
        h, w = int(bev_shape[0]), int(bev_shape[1])
        x0, y0, _, x1, y1, _ = self.point_cloud_range
        k1 = self.num_classes + 1
        maps = []
        for pts, sc in zip(points, scores):
            if sc.shape[-1] != k1:
                raise ValueError(f'expected {k1} class scores per point, got {sc.shape[-1]}')
            col = torch.floor((pts[:, 0] - x0) / ((x1 - x0) / w)).long()
            row = torch.floor((pts[:, 1] - y0) / ((y1 - y0) / h)).long()
            keep = (col >= 0) & (col < w) & (row >= 0) & (row < h) & (sc.sum(-1) > 0.5)
            cell = row[keep] * w + col[keep]
            total = sc.new_zeros((h * w, k1)).index_add_(0, cell, sc[keep])
            count = sc.new_zeros(h * w).index_add_(0, cell, sc.new_ones(len(cell)))
            mean = total / count.clamp(min=1)[:, None]
            maps.append(torch.cat([mean, (count > 0).to(sc.dtype)[:, None]], 1).t().reshape(
                k1 + 1, h, w))
        cells = torch.stack(maps)  # [B, K + 2, H, W]
        pooled = F.max_pool2d(cells[:, 1:k1], self.pool_size, stride=1,
                              padding=self.pool_size // 2)
        return torch.cat([cells, pooled], 1)
