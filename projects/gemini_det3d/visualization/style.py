"""Colours shared by every view, so a box means the same thing in every picture.

* ground truth: pure green ``GT_RGB = (0, 255, 0)``;
* predictions: pure red ``PRED_RGB = (255, 0, 0)``.

Points and the depth overlay use perceptual colormaps (viridis, plasma) that contain neither
colour, so box pixels stay unambiguous (the tests count them).
"""
from typing import Tuple

import numpy as np

GT_RGB: Tuple[int, int, int] = (0, 255, 0)
PRED_RGB: Tuple[int, int, int] = (255, 0, 0)
BACKGROUND_RGB: Tuple[int, int, int] = (0, 0, 0)

POINT_COLORMAP = 'viridis'   # scan points, by height or reflectance
DEPTH_COLORMAP = 'plasma'    # camera overlay, by depth (near = bright yellow)

# Value ranges the colormaps span (values outside are clipped).
HEIGHT_RANGE_M = (-2.5, 1.0)   # LiDAR frame z: road (about -1.7 m on KITTI) to rooftops
REFLECTANCE_RANGE = (0.0, 1.0)
DEPTH_RANGE_M = (0.0, 60.0)


def colorize(values: np.ndarray, value_range: Tuple[float, float], cmap: str) -> np.ndarray:
    """Map values through a matplotlib colormap.

    Args:
        values (np.ndarray): [N] floats.
        value_range (tuple): (low, high) mapped to the ends of the colormap.
        cmap (str): matplotlib colormap name.

    Returns:
        np.ndarray: [N, 3] uint8 RGB.
    """
    from matplotlib import colormaps
    low, high = value_range
    scaled = np.clip((np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-9), 0, 1)
    return (colormaps[cmap](scaled)[:, :3] * 255).round().astype(np.uint8)


def point_colors(points: np.ndarray, color_by: str = 'height') -> np.ndarray:
    """Colours of scan points.

    Args:
        points (np.ndarray): [N, >=3] (x, y, z[, reflectance]) in the LiDAR frame.
        color_by (str): ``'height'`` (z) or ``'reflectance'`` (4th column).

    Returns:
        np.ndarray: [N, 3] uint8 RGB.
    """
    if color_by == 'height':
        return colorize(points[:, 2], HEIGHT_RANGE_M, POINT_COLORMAP)
    if color_by == 'reflectance':
        if points.shape[1] < 4:
            raise ValueError('color_by="reflectance" needs points with a 4th column')
        return colorize(points[:, 3], REFLECTANCE_RANGE, POINT_COLORMAP)
    raise ValueError(f'color_by must be "height" or "reflectance", got {color_by!r}')
