"""Vectorised ray intersection with oriented boxes and with the ground plane.

Both the LiDAR simulation and the camera renderer cast bundles of rays from one origin:
the box test is the slab method in the box's own frame, on arrays of any broadcastable
shape (the camera passes per-column and per-row arrays and gets a 2D grid back without
ever building the full per-pixel direction array).
"""
from typing import Sequence, Tuple

import numpy as np

_TINY = 1e-12


def slab_intersect(origin: np.ndarray, dirs: Sequence[np.ndarray], half_size: np.ndarray
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays ``origin + t * dir`` against the axis-aligned box ``|p_a| <= half_size[a]``.

    Args:
        origin: (3,) ray origin in the box frame (outside the box).
        dirs: three arrays (broadcastable to a common shape S): the x, y, z components
            of the ray directions in the box frame (need not be unit length).
        half_size: (3,) half extents.

    Returns:
        t_near (S): ray parameter where the ray enters the box (inf where it misses or
        where the box is behind the origin), entry_axis (S, int8): the axis of the face
        entered (0, 1, 2), and the sign (S, int8) of that face (-1 or +1).
    """
    t_lo, t_hi, face_sign = [], [], []
    for axis in range(3):
        d = np.asarray(dirs[axis], dtype=np.float64)
        d = np.where(np.abs(d) < _TINY, _TINY, d)  # parallel rays: +-inf slabs, never NaN
        inv = 1.0 / d
        t_a = (-half_size[axis] - origin[axis]) * inv
        t_b = (half_size[axis] - origin[axis]) * inv
        t_lo.append(np.minimum(t_a, t_b))
        t_hi.append(np.maximum(t_a, t_b))
        face_sign.append(np.where(d > 0, -1, 1).astype(np.int8))  # entering through the -side when moving +
    near = np.maximum(np.maximum(t_lo[0], t_lo[1]), t_lo[2])
    far = np.minimum(np.minimum(t_hi[0], t_hi[1]), t_hi[2])
    hit = (far >= near) & (near > 0)
    t_near = np.where(hit, near, np.inf)
    axis = np.where(near == t_lo[0], 0, np.where(near == t_lo[1], 1, 2)).astype(np.int8)
    signs = np.broadcast_arrays(*face_sign, axis)[:3]
    sign = np.choose(axis, signs).astype(np.int8)
    return t_near, axis, sign


def ray_plane_y(origin: np.ndarray, dx, dy, dz, y0: float, slope_x: float, slope_z: float
                ) -> np.ndarray:
    """Ray parameter t where ``origin + t * d`` meets ``y = y0 + slope_x x + slope_z z``.

    Args:
        origin: (3,); dx, dy, dz: broadcastable direction components.

    Returns:
        t (broadcast shape): inf where the ray misses the plane ahead of the origin.
    """
    numerator = y0 + slope_x * origin[0] + slope_z * origin[2] - origin[1]
    denominator = dy - slope_x * dx - slope_z * dz
    with np.errstate(divide='ignore', invalid='ignore'):
        t = numerator / denominator
    return np.where((t > 0) & np.isfinite(t), t, np.inf)
