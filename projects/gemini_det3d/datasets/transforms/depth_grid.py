"""Pure-numpy core of the depth-aligned LiDAR image: projection, z-buffer, densification.

The LiDAR image is a float32 ``H x W x C`` grid in the camera's pixel grid. A pixel
``(row, col)`` covers the continuous image coordinates ``[col, col + 1) x [row, row + 1)``
(mmcv's resize and flip, and PointFusion's ``grid_sample(align_corners=False)``, all use this
edge convention), so a point projected to ``(u, v)`` lands in pixel
``(floor(v), floor(u))``. When several points land in one pixel the one nearest to the
camera wins (z-buffer); every channel of the pixel comes from that one point, so depths are
never mixed.

Channels (any subset, in any order):

* ``'depth'``: camera-frame depth in metres, the third row of ``lidar2img`` applied to the
  point (for KITTI's ``P2 @ R0_rect @ Tr_velo_to_cam`` that is the z of camera 2);
* ``'height'``: the point's z in the LiDAR frame (metres above the sensor);
* ``'reflectance'``: the scan's 4th column;
* ``'mask'``: 1 where a point landed, ``fill_mask_value`` where densification filled the
  pixel, 0 elsewhere.
"""
from typing import Sequence, Tuple

import numpy as np

CHANNELS = ('depth', 'height', 'reflectance', 'mask')
DEFAULT_CHANNELS = CHANNELS

# Densification compares depths quantised to this step; ties are broken by point index.
_DEPTH_QUANTUM_M = 1e-3


def check_channels(channels: Sequence[str]) -> Tuple[str, ...]:
    """Validate a channel list; returns it as a tuple."""
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels or len(set(channels)) != len(channels):
        raise ValueError(f'depth image channels must be distinct names from {CHANNELS}, '
                         f'got {channels}')
    return channels


def project_points_to_image(points: np.ndarray, lidar2img: np.ndarray, hw: Tuple[int, int],
                            min_depth: float = 0.1):
    """Project LiDAR points into an image and keep those in front of the camera and inside it.

    Args:
        points (np.ndarray): [N, >=3] LiDAR points (x, y, z, ...).
        lidar2img (np.ndarray): [4, 4] (or [3, 4]) LiDAR-to-pixel projection.
        hw (tuple[int, int]): image height and width.
        min_depth (float): points with camera depth <= this (behind or at the camera) are dropped.

    Returns:
        tuple: ``uv`` [M, 2] float64 continuous pixel coordinates (u right, v down),
        ``depth`` [M] float64 camera depth, ``index`` [M] int64 row of each kept point in
        ``points`` (ascending). NaN / inf points are dropped.
    """
    height, width = int(hw[0]), int(hw[1])
    proj = np.asarray(lidar2img, dtype=np.float64)
    if proj.shape not in ((4, 4), (3, 4)):
        raise ValueError(f'lidar2img must be 4x4 or 3x4, got shape {proj.shape}')
    xyz = np.asarray(points)[:, :3]
    # A cheap single-precision depth pass drops the points behind the camera (half of a
    # 360-degree scan) with a generous margin; the survivors are projected in float64, so
    # the result equals a float64 projection of every point.
    rough_depth = xyz @ proj[2, :3].astype(np.float32)
    rough_depth += np.float32(proj[2, 3])
    slack = np.float32(1e-3) * (np.abs(rough_depth) + np.float32(1.0))
    # NaN compares False, so non-finite points fall out here.
    index = np.flatnonzero(rough_depth > min_depth - slack)
    cam = proj[:3, :3] @ xyz[index].astype(np.float64).T
    cam += proj[:3, 3:4]
    depth = cam[2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u = cam[0] / depth
        v = cam[1] / depth
    keep = np.flatnonzero((depth > min_depth) & (u >= 0) & (u < width) & (v >= 0)
                          & (v < height))
    return np.stack([u[keep], v[keep]], axis=1), depth[keep], index[keep]


def zbuffer_winners(uv: np.ndarray, depth: np.ndarray, hw: Tuple[int, int]):
    """For every pixel hit by a point, the point nearest to the camera.

    Args:
        uv (np.ndarray): [M, 2] continuous pixel coordinates, all inside ``hw``.
        depth (np.ndarray): [M] camera depths.
        hw (tuple[int, int]): image height and width.

    Returns:
        tuple: ``pixel`` [K] distinct flat pixel indices (row * W + col) of the hit pixels,
        ``winner`` [K] index into ``uv`` of the point that owns each (smallest depth; among
        exactly equal depths, one of them).
    """
    height, width = int(hw[0]), int(hw[1])
    pixel = uv[:, 1].astype(np.int64) * width + uv[:, 0].astype(np.int64)
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, pixel, depth)
    winner = np.flatnonzero(nearest[pixel] == depth)
    if len(winner) != np.count_nonzero(nearest != np.inf):
        # Exact depth ties: let one point own the pixel.
        owner = np.full(height * width, -1, dtype=np.int64)
        owner[pixel[winner]] = winner
        winner = winner[owner[pixel[winner]] == winner]
    return pixel[winner], winner


def point_channel_values(points: np.ndarray, depth: np.ndarray,
                         channels: Sequence[str]) -> np.ndarray:
    """Per-point values of the requested channels.

    Args:
        points (np.ndarray): [M, >=3] LiDAR points (x, y, z[, reflectance]).
        depth (np.ndarray): [M] camera depths of the same points.
        channels (Sequence[str]): channel names (see module docstring).

    Returns:
        np.ndarray: [M, C] float32.
    """
    values = np.empty((len(depth), len(channels)), dtype=np.float32)
    for c, name in enumerate(channels):
        if name == 'depth':
            values[:, c] = depth
        elif name == 'height':
            values[:, c] = points[:, 2]
        elif name == 'reflectance':
            values[:, c] = points[:, 3] if points.shape[1] > 3 else 0.0
        else:  # mask
            values[:, c] = 1.0
    return values


def rasterize_nearest(uv: np.ndarray, depth: np.ndarray, values: np.ndarray,
                      hw: Tuple[int, int], dilation: int = 1,
                      mask_channel: int = -1, fill_mask_value: float = 0.5) -> np.ndarray:
    """Z-buffer projected points into an ``H x W x C`` grid.

    Args:
        uv (np.ndarray): [M, 2] continuous pixel coordinates; points outside ``hw`` are ignored.
        depth (np.ndarray): [M] camera depth of each point (decides who wins a pixel).
        values (np.ndarray): [M, C] what each point writes into its pixel.
        hw (tuple[int, int]): grid height and width.
        dilation (int): odd window size k; when > 1, every empty pixel takes the values of
            the nearest (smallest-depth) measured pixel in its k x k neighbourhood.
        mask_channel (int): channel written with ``fill_mask_value`` in filled pixels
            (-1: none). Measured pixels keep their own values.
        fill_mask_value (float): mask value of a filled pixel.

    Returns:
        np.ndarray: [H, W, C] float32; 0 where no point landed.
    """
    height, width = int(hw[0]), int(hw[1])
    num_channels = values.shape[1]
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    if not inside.all():
        uv, depth, values = uv[inside], depth[inside], values[inside]
    grid = np.zeros((height * width, num_channels), dtype=np.float32)
    pixel, winner = zbuffer_winners(uv, depth, hw)
    grid[pixel] = values[winner]
    if dilation > 1 and len(pixel):
        _fill_from_nearest_neighbour(grid, pixel, depth[winner], hw, dilation, mask_channel,
                                     fill_mask_value)
    return grid.reshape(height, width, num_channels)


def _fill_from_nearest_neighbour(grid, pixel, pixel_depth, hw, dilation, mask_channel,
                                 fill_mask_value):
    """In place: empty pixels copy the nearest-depth measured pixel of their k x k window.

    ``grid`` is the [H * W, C] float32 grid, ``pixel`` [K] its measured pixels and
    ``pixel_depth`` [K] their depths.
    """
    if dilation % 2 != 1:
        raise ValueError(f'dilation must be an odd window size, got {dilation}')
    height, width = int(hw[0]), int(hw[1])
    # One key per measured pixel orders by (quantised depth, pixel index), so the minimum
    # key reaching a pixel is its nearest neighbour and says which one it is. The keys are
    # integers below 2**53 held exactly in float64.
    index_scale = 1 << int(height * width).bit_length()
    max_steps = float(2**53 // index_scale - 1)
    depth_steps = np.minimum(np.round(pixel_depth / _DEPTH_QUANTUM_M), max_steps)
    key = depth_steps * float(index_scale) + pixel
    # Each measured pixel offers its key to its k*k - 1 neighbours (K * (k*k - 1) scatters:
    # cheaper than a minimum filter over the whole, mostly empty, image).
    row, col = np.divmod(pixel, width)
    nearest = np.full(height * width, np.inf)
    radius = dilation // 2
    for dy in range(-radius, radius + 1):
        target_row = row + dy
        row_ok = (target_row >= 0) & (target_row < height)
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            target_col = col + dx
            ok = row_ok & (target_col >= 0) & (target_col < width)
            np.minimum.at(nearest, (target_row * width + target_col)[ok], key[ok])
    nearest[pixel] = np.inf  # measured pixels keep their own point
    fill = np.flatnonzero(nearest < np.inf)
    source = nearest[fill].astype(np.int64) & (index_scale - 1)
    # Copy whole rows at once through a one-item-per-pixel view of the grid.
    rows = grid.view(np.dtype((np.void, grid.dtype.itemsize * grid.shape[1]))).ravel()
    rows[fill] = rows[source]
    if mask_channel >= 0:
        grid[fill, mask_channel] = fill_mask_value


def project_lidar_to_depth_grid(points: np.ndarray, lidar2img: np.ndarray,
                                hw: Tuple[int, int],
                                channels: Sequence[str] = DEFAULT_CHANNELS,
                                min_depth: float = 0.1, dilation: int = 1,
                                fill_mask_value: float = 0.5) -> np.ndarray:
    """The depth-aligned LiDAR image of one scan.

    Args:
        points (np.ndarray): [N, >=3] raw LiDAR scan (x, y, z[, reflectance]) in the LiDAR frame.
        lidar2img (np.ndarray): [4, 4] raw LiDAR-to-pixel projection of the image.
        hw (tuple[int, int]): image height and width.
        channels (Sequence[str]): channel names, see the module docstring.
        min_depth (float): points at or behind this camera depth are dropped.
        dilation (int): odd k; > 1 fills empty pixels from the nearest point in a k x k window.
        fill_mask_value (float): ``'mask'`` value of filled pixels.

    Returns:
        np.ndarray: [H, W, C] float32 grid aligned with the image.
    """
    channels = check_channels(channels)
    uv, depth, index = project_points_to_image(points, lidar2img, hw, min_depth)
    values = point_channel_values(np.asarray(points)[index], depth, channels)
    mask_channel = channels.index('mask') if 'mask' in channels else -1
    return rasterize_nearest(uv, depth, values, hw, dilation, mask_channel, fill_mask_value)
