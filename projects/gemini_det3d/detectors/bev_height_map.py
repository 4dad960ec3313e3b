"""``BEVHeightMap``: per bird's-eye-view cell, where the scan's points lie in height.

The sparse encoder hands SECOND its features with the z axis folded into channels, after
learned voxel features and three strided 3D convolutions. How tall a car is and where the
ground under it lies are then things the network must learn to read out of those
channels, and on the tiny CPU configs it does not within its budget: their cars' predicted
heights barely vary (README, "What limits Car 3D"). This module measures them directly, from
the raw points of the hard voxels, at the resolution of the sparse encoder's output, so that
the detector can stack them onto that output as extra channels (``pts_height_map`` of
:class:`EmptyScanSafeMVXFasterRCNN`). The same idea as the height maps of BEV detectors
such as PIXOR, reduced to what a box needs: the highest and lowest point and the density.

Channels, per cell of ``downsample x downsample`` voxels:

0. occupied: 1 where the cell has a point, else 0;
1. highest point's z, 2. lowest point's z: mapped from ``[z_min, z_max]`` to ``[0, 1]``
   (``point_cloud_range``'s z), 0 in empty cells (channel 0 tells them apart);
3. density: ``log(1 + points) / log(1 + capacity)``, with ``capacity`` the most points the
   hard voxels of one cell can hold, so the channel stays within ``[0, 1]``.
"""
import math
from typing import Sequence

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

NUM_CHANNELS = 4


@MODELS.register_module()
class BEVHeightMap(nn.Module):
    """Height statistics of the points in each bird's-eye-view cell (no parameters).

    Args:
        point_cloud_range (Sequence[float]): ``[x0, y0, z0, x1, y1, z1]`` of the voxel grid.
        voxel_size (Sequence[float]): ``[dx, dy, dz]`` of the voxel grid.
        downsample (int): voxels per cell side: the sparse encoder's stride in x and y.
        max_num_points (int): points a hard voxel holds (the voxel layer's setting).

    Shapes: ``forward(voxels [M, P, C], num_points [M], coors [M, 4], batch_size)`` ->
    ``[batch_size, 4, ceil(ny / downsample), ceil(nx / downsample)]``, with ``coors`` in
    mmdet3d's order ``(sample, z, y, x)`` and ``nx, ny`` the grid's voxel counts; the layout
    matches ``SparseEncoder``'s output ``[B, C * D, H, W]`` (H along y, W along x).
    """

    def __init__(self, point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                 downsample: int = 4, max_num_points: int = 5):
        super().__init__()
        if downsample < 1:
            raise ValueError(f'BEVHeightMap: downsample must be >= 1, got {downsample}')
        x0, y0, z0, x1, y1, z1 = point_cloud_range
        grid_x = round((x1 - x0) / voxel_size[0])
        grid_y = round((y1 - y0) / voxel_size[1])
        self.height = math.ceil(grid_y / downsample)
        self.width = math.ceil(grid_x / downsample)
        self.downsample = downsample
        self.z_min, self.z_span = float(z0), float(z1 - z0)
        voxels_per_cell = downsample * downsample * round((z1 - z0) / voxel_size[2])
        self.count_norm = math.log1p(voxels_per_cell * max_num_points)

    @torch.no_grad()
    def forward(self, voxels: Tensor, num_points: Tensor, coors: Tensor, batch_size: int) -> Tensor:
        """See the class docstring for the shapes."""
        cells = batch_size * self.height * self.width
        max_points = voxels.shape[1]
        valid = (torch.arange(max_points, device=voxels.device)[None, :]
                 < num_points[:, None])  # [M, P]: hard voxels are zero-padded
        cell = ((coors[:, 0].long() * self.height + coors[:, 2].long() // self.downsample)
                * self.width + coors[:, 3].long() // self.downsample)  # [M]
        cell = cell[:, None].expand(-1, max_points)[valid]  # [N] one per real point
        z = (voxels[..., 2][valid] - self.z_min) / self.z_span  # [N]
        z = z.clamp(0.0, 1.0)

        count = torch.zeros(cells, device=voxels.device, dtype=voxels.dtype)
        count.index_add_(0, cell, torch.ones_like(z))
        top = torch.zeros_like(count).scatter_reduce_(0, cell, z, 'amax', include_self=False)
        bottom = torch.zeros_like(count).scatter_reduce_(0, cell, z, 'amin', include_self=False)
        occupied = (count > 0).to(count.dtype)
        density = (torch.log1p(count) / self.count_norm).clamp(max=1.0)
        maps = torch.stack([occupied, top, bottom, density])  # [4, B * H * W]
        return maps.view(NUM_CHANNELS, batch_size, self.height, self.width).transpose(0, 1)
