"""The two scan views as pinhole cameras: bird's-eye view (BEV) and chase view.

Both renderers use the same :class:`ViewSpec`: Open3D takes its eye / centre / up / field of
view, the software fallback turns it into a 4x4 world-to-pixel matrix with
:func:`view_projection`, so the two give the same framing.

The BEV is a perspective camera far above the scene with a narrow field of view: nearly
orthographic (heights change the scale by well under 1 %), and Open3D's wide-line shader
draws lines only under a perspective projection.
"""
import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

KITTI_BEV_RANGE = (0.0, -40.0, 70.4, 40.0)  # x_min, y_min, x_max, y_max (mmdet3d's KITTI range)
BEV_EYE_HEIGHT_M = 1000.0


@dataclass(frozen=True)
class ViewSpec:
    """A pinhole camera looking at the LiDAR-frame scene.

    Attributes:
        eye, center, up: camera position, the point it looks at, the world up direction
            (LiDAR frame, metres).
        fov_deg: vertical field of view.
        width, height: image size in pixels.
        near, far: clipping distances along the view direction (metres).
    """
    eye: Tuple[float, float, float]
    center: Tuple[float, float, float]
    up: Tuple[float, float, float]
    fov_deg: float
    width: int
    height: int
    near: float
    far: float


def bev_view(bev_range: Sequence[float] = KITTI_BEV_RANGE, width: int = 1000,
             height: int = 880) -> ViewSpec:
    """Looking straight down; forward (+x) is up in the image, left (+y) is left.

    Args:
        bev_range: (x_min, y_min, x_max, y_max) in metres, all of which is visible.
    """
    x_min, y_min, x_max, y_max = map(float, bev_range)
    if not (x_max > x_min and y_max > y_min):
        raise ValueError(f'bev range must be x_min y_min x_max y_max, got {tuple(bev_range)}')
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    # Image rows span x, columns span y: fit the larger of the two.
    half_vertical = max((x_max - x_min) / 2, (y_max - y_min) / 2 * height / width)
    fov = 2 * math.degrees(math.atan(half_vertical / BEV_EYE_HEIGHT_M))
    return ViewSpec(eye=(cx, cy, BEV_EYE_HEIGHT_M), center=(cx, cy, 0.0), up=(1.0, 0.0, 0.0),
                    fov_deg=fov, width=width, height=height,
                    near=BEV_EYE_HEIGHT_M - 100.0, far=BEV_EYE_HEIGHT_M + 100.0)


def chase_view(width: int = 1000, height: int = 620, behind_m: float = 12.0,
               above_m: float = 7.0, look_ahead_m: float = 25.0) -> ViewSpec:
    """Behind and above the ego car, looking forward along +x and slightly down."""
    return ViewSpec(eye=(-behind_m, 0.0, above_m), center=(look_ahead_m, 0.0, -1.7),
                    up=(0.0, 0.0, 1.0), fov_deg=50.0, width=width, height=height,
                    near=0.5, far=300.0)


def view_rotation(view: ViewSpec) -> np.ndarray:
    """World-to-camera rotation, OpenCV axes (x right, y down, z forward), [3, 3]."""
    eye, center, up = (np.asarray(v, dtype=np.float64) for v in (view.eye, view.center, view.up))
    forward = center - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def view_projection(view: ViewSpec) -> np.ndarray:
    """World-to-pixel projection of the view, [4, 4], like KITTI's ``lidar2img``:
    ``P @ (x, y, z, 1) = (u * d, v * d, d, 1)`` with ``d`` the depth along the view axis."""
    rotation = view_rotation(view)
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rotation
    extrinsic[:3, 3] = -rotation @ np.asarray(view.eye, dtype=np.float64)
    focal = view.height / 2 / math.tan(math.radians(view.fov_deg) / 2)
    intrinsic = np.eye(4)
    intrinsic[:3, :3] = [[focal, 0, view.width / 2], [0, focal, view.height / 2], [0, 0, 1]]
    return intrinsic @ extrinsic
