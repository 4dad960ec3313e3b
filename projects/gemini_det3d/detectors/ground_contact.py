"""``GroundContactRefiner``: put each predicted box's bottom on the ground around it.

Cars, pedestrians and cyclists stand on the ground, and KITTI's boxes (like the synthetic
set's) have their bottom face on it. The tiny CPU detectors find where an object is and which
way it points well within their budget, but not the height of the ground under it: their
predicted box bottoms are off by 0.16 m (standard deviation) on the synthetic val cars, which
decides most of their Car 3D IoU-0.7 misses (docs/experiments.md, "What limits Car 3D"). The ground itself
is in the scan: the points just around a box's footprint, at about the box's bottom height,
are mostly road. This module measures it there after the head's decoding, with no parameters,
the way ground-plane priors are used in KITTI pipelines:

for each box (LiDAR frame, bottom centre ``z``, yaw about z),

1. take the scan's points in a ring around its footprint, in the box's own frame:
   inside the footprint grown by ``ring_outer`` metres on every side, outside it grown by
   ``ring_inner`` (which keeps out the object's own points where the box is a little small);
2. keep those within ``height_band`` metres of the predicted bottom (road, not the roof of
   a neighbouring car or a wall);
3. with at least ``min_points`` of them, the new bottom is their median height; with fewer
   (far away, or nothing around it) the box keeps the head's bottom.

Only the bottom moves (the box keeps its height, so its top moves with it); x, y, size, yaw,
scores and labels are untouched, so the bird's-eye-view results are exactly the head's.
"""
from typing import Optional, Sequence

import torch
from mmcv.ops import points_in_boxes_cpu
from mmdet3d.registry import MODELS
from torch import Tensor, nn


class GroundContactError(ValueError):
    """Bad ``GroundContactRefiner`` settings."""


@MODELS.register_module()
class GroundContactRefiner(nn.Module):
    """Moves predicted boxes' bottoms to the median height of the ground points around them.

    Args:
        ring_inner (float): metres added to the footprint (each side) that are not ground.
        ring_outer (float): metres added to the footprint (each side) where ground is looked for.
        height_band (float): ground points lie within this many metres of the predicted bottom.
        min_points (int): fewer ground points than this leave the box as it is.
        labels (Sequence[int], optional): class indices to refine; all when None.
    """

    def __init__(self, ring_inner: float = 0.3, ring_outer: float = 2.0, height_band: float = 0.5,
                 min_points: int = 5, labels: Optional[Sequence[int]] = None):
        super().__init__()
        if not 0 <= ring_inner < ring_outer:
            raise GroundContactError(
                f'GroundContactRefiner: need 0 <= ring_inner < ring_outer, got ring_inner='
                f'{ring_inner}, ring_outer={ring_outer}')
        if height_band <= 0 or min_points < 1:
            raise GroundContactError(
                f'GroundContactRefiner: height_band ({height_band}) must be > 0 and min_points '
                f'({min_points}) >= 1')
        self.ring_inner = ring_inner
        self.ring_outer = ring_outer
        self.height_band = height_band
        self.min_points = min_points
        self.labels = None if labels is None else [int(label) for label in labels]

    @torch.no_grad()
    def forward(self, points: Tensor, boxes: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """The boxes with refined bottoms.

        Args:
            points (Tensor): ``[N, >=3]`` the frame's scan, LiDAR frame (x, y, z first).
            boxes (Tensor): ``[M, >=7]`` (x, y, z_bottom, dx, dy, dz, yaw, ...), LiDAR frame,
                mmdet3d's ``LiDARInstance3DBoxes.tensor``.
            labels (Tensor, optional): ``[M]`` class indices (needed when ``labels`` is set).

        Returns:
            Tensor: ``[M, >=7]``, a copy of ``boxes`` with column 2 changed where the ground
            was found.
        """
        refined = boxes.clone()
        if len(boxes) == 0 or len(points) == 0:
            return refined
        todo = torch.arange(len(boxes), device=boxes.device)
        if self.labels is not None:
            if labels is None:
                raise GroundContactError('GroundContactRefiner: labels=... is set but no box '
                                         'labels were given')
            wanted = torch.tensor(self.labels, device=labels.device)
            todo = todo[torch.isin(labels, wanted).to(todo.device)]
        if len(todo):
            refined[todo, 2] = self._ground_heights(points[:, :3].to(boxes.dtype), boxes[todo])
        return refined

    def _ground_heights(self, xyz: Tensor, boxes: Tensor) -> Tensor:
        """``[N, 3]`` points, ``[K, >=7]`` boxes -> ``[K]`` new bottoms (old where no ground)."""
        ground = (self._in_band(xyz, boxes, self.ring_outer)
                  & ~self._in_band(xyz, boxes, self.ring_inner))  # [N, K]
        counts = ground.sum(dim=0)
        heights = torch.where(ground, xyz[:, 2:3], torch.full_like(xyz[:, 2:3], float('nan')))
        median = heights.nanmedian(dim=0).values  # the lower middle for an even count
        return torch.where(counts >= self.min_points, median, boxes[:, 2])

    def _in_band(self, xyz: Tensor, boxes: Tensor, margin: float) -> Tensor:
        """``[N, K]`` bool: inside box k's footprint grown by ``margin`` on every side and
        within ``height_band`` of its bottom (mmcv's rotated point-in-box test)."""
        band = boxes[:, :7].clone()
        band[:, 2] -= self.height_band
        band[:, 3:5] += 2 * margin
        band[:, 5] = 2 * self.height_band
        inside = points_in_boxes_cpu(xyz[None].float().cpu(), band[None].float().cpu())[0]
        return inside.bool().to(xyz.device)
