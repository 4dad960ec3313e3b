"""Vectorised ray intersection with the synthetic world's primitives and its ground.

Objects are unions of three primitives, each in its own frame: an axis-aligned box
``|p_a| <= half[a]``, an upright elliptic cylinder ``(x/half_x)^2 + (z/half_z)^2 <= 1,
|y| <= half_y`` (axis along its y) and an ellipsoid ``sum (p_a/half_a)^2 <= 1``. Every function
takes ray origins and directions as per-component arrays of any broadcastable shape (the
camera passes per-column and per-row arrays, the LiDAR flat arrays, shadow rays one origin per
ray) and returns the entry parameter ``t`` (inf where the ray misses or the primitive is
behind) and the outward unit normal at the entry point, in the primitive's frame.

The ground (:func:`ray_ground`) is a height field in the camera frame (y down): a road whose
slope changes along z (``y = y0 + slope_x x + slope_z z + curve_z z^2``), pavements raised by a
kerb beyond the road's edges, and the vertical kerb faces between them; each piece is solved
in closed form, so no ray marching is needed.
"""
from typing import Sequence, Tuple

import numpy as np

_TINY = 1e-12
BOX, CYLINDER, ELLIPSOID = 0, 1, 2


def _safe(d):
    d = np.asarray(d, dtype=np.float64)
    return np.where(np.abs(d) < _TINY, _TINY, d)  # parallel rays: +-inf slabs, never NaN


def slab_intersect(origin: Sequence, dirs: Sequence, half_size: np.ndarray
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays ``origin + t * dir`` against the axis-aligned box ``|p_a| <= half_size[a]``.

    Args:
        origin: three arrays (or a (3,) vector) broadcastable with ``dirs``: ray origins in
            the box frame (outside the box).
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
        d = _safe(dirs[axis])
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


def box_entry(origin: Sequence, dirs: Sequence, half_size: np.ndarray) -> np.ndarray:
    """Only the entry parameter of :func:`slab_intersect` (inf on a miss): for culling."""
    near, far = -np.inf, np.inf
    for axis in range(3):
        inv = 1.0 / _safe(dirs[axis])
        t_a = (-half_size[axis] - origin[axis]) * inv
        t_b = (half_size[axis] - origin[axis]) * inv
        near = np.maximum(near, np.minimum(t_a, t_b))
        far = np.minimum(far, np.maximum(t_a, t_b))
    return np.where((far >= near) & (near > 0), near, np.inf)


def _box(origin, dirs, half):
    t, axis, sign = slab_intersect(origin, dirs, half)
    normal = [np.where(axis == a, sign, 0).astype(np.float64) for a in range(3)]
    return t, normal


def _quadratic_entry(a, b, c):
    """Smaller root of ``a t^2 + 2 b t + c = 0`` (inf where none); a > 0."""
    disc = b * b - a * c
    with np.errstate(invalid='ignore', divide='ignore'):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where(disc >= 0, t, np.inf)


def _ellipsoid(origin, dirs, half):
    o = [origin[i] / half[i] for i in range(3)]
    d = [np.asarray(dirs[i], np.float64) / half[i] for i in range(3)]
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
    c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - 1.0
    t = _quadratic_entry(np.maximum(a, _TINY), b, c)
    t = np.where(t > 0, t, np.inf)
    hit = [o[i] + t * d[i] for i in range(3)]
    normal = [np.where(np.isfinite(t), hit[i] / half[i], 0.0) for i in range(3)]
    norm = np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2) + _TINY
    return t, [n / norm for n in normal]


def _cylinder(origin, dirs, half):
    ox, oz = origin[0] / half[0], origin[2] / half[2]
    dx, dz = np.asarray(dirs[0], np.float64) / half[0], np.asarray(dirs[2], np.float64) / half[2]
    oy, dy = origin[1], _safe(dirs[1])
    a = dx * dx + dz * dz
    t_side = _quadratic_entry(np.maximum(a, _TINY), ox * dx + oz * dz, ox * ox + oz * oz - 1.0)
    y_side = oy + t_side * dy
    t_side = np.where((t_side > 0) & (np.abs(y_side) <= half[1]), t_side, np.inf)
    cap_sign = np.where(dy > 0, -1.0, 1.0)  # the cap the ray enters first
    t_cap = (cap_sign * half[1] - oy) / dy
    rx, rz = ox + t_cap * dx, oz + t_cap * dz
    t_cap = np.where((t_cap > 0) & (rx * rx + rz * rz <= 1.0), t_cap, np.inf)
    side = t_side <= t_cap
    t = np.minimum(t_side, t_cap)
    t_n = np.where(np.isfinite(t_side), t_side, 0.0)
    nx, nz = (ox + t_n * dx) / half[0], (oz + t_n * dz) / half[2]
    norm = np.sqrt(nx * nx + nz * nz) + _TINY
    normal = [np.where(side, nx / norm, 0.0), np.where(side, 0.0, cap_sign), np.where(side, nz / norm, 0.0)]
    return t, normal


_INTERSECT = {BOX: _box, CYLINDER: _cylinder, ELLIPSOID: _ellipsoid}


def primitive_intersect(shape: int, origin: Sequence, dirs: Sequence, half: np.ndarray):
    """Entry of rays into one primitive (in its own frame).

    Args:
        shape: BOX, CYLINDER or ELLIPSOID.
        origin, dirs: three broadcastable arrays each (x, y, z components).
        half: (3,) half extents (box), radii and half height (cylinder: x, z radii; y half
            height), or radii (ellipsoid).

    Returns:
        t (S,): entry parameter, inf on a miss; normal: three arrays (S,), the outward unit
        normal at the entry point (zeros on a miss).
    """
    return _INTERSECT[int(shape)](origin, dirs, half)


def _first_root(qa, qb, qc):
    """Smallest positive root of ``qa t^2 + qb t + qc = 0`` (qa may be ~0), inf if none."""
    linear = np.abs(qa) < 1e-12
    with np.errstate(divide='ignore', invalid='ignore'):
        t_lin = -qc / np.where(np.abs(qb) < _TINY, _TINY, qb)
        disc = qb * qb - 4 * qa * qc
        sq = np.sqrt(np.maximum(disc, 0.0))
        q = -0.5 * (qb + np.copysign(sq, qb))  # numerically stable pair of roots
        r1 = q / np.where(linear, 1.0, qa)
        r2 = qc / np.where(np.abs(q) < _TINY, _TINY, q)
    r1 = np.where((disc >= 0) & (r1 > 0), r1, np.inf)
    r2 = np.where((disc >= 0) & (r2 > 0), r2, np.inf)
    t_quad = np.minimum(r1, r2)
    t_lin = np.where(t_lin > 0, t_lin, np.inf)
    return np.where(linear, t_lin, t_quad)


def ray_ground(origin: np.ndarray, dx, dy, dz, ground) -> Tuple[np.ndarray, np.ndarray]:
    """Ray parameter where ``origin + t * d`` meets the ground, and which piece it meets.

    Args:
        origin: (3,) camera-frame origin above the ground; dx, dy, dz: broadcastable
            direction components.
        ground: a :class:`~.synthetic_scene.Ground` (road height profile, road edges, kerb).

    Returns:
        t (broadcast shape): inf where the ray never meets the ground ahead, and the piece
        (int8): 0 road, 1 pavement / verge (raised by the kerb), 2 kerb face.
    """
    dx, dy, dz = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (dx, dy, dz)))
    ox, oy, oz = origin
    g = ground
    qa = g.curve_z * dz * dz
    qb = g.slope_x * dx + g.slope_z * dz + 2 * g.curve_z * oz * dz - dy
    base = g.y0 + g.slope_x * ox + g.slope_z * oz + g.curve_z * oz * oz - oy
    t_road = _first_root(qa, qb, base)
    x_road = ox + t_road * dx
    t_road = np.where((x_road > g.left_edge) & (x_road < g.right_edge), t_road, np.inf)
    t_pave = _first_root(qa, qb, base - g.kerb_height)
    x_pave = ox + t_pave * dx
    t_pave = np.where((x_pave <= g.left_edge) | (x_pave >= g.right_edge), t_pave, np.inf)
    t_kerb = np.full(dx.shape, np.inf)
    sdx = _safe(dx)
    for edge in (g.left_edge, g.right_edge):
        t = (edge - ox) / sdx
        z = oz + t * dz
        y = oy + t * dy
        road_y = g.y0 + g.slope_x * edge + g.slope_z * z + g.curve_z * z * z
        ok = (t > 0) & (y <= road_y) & (y >= road_y - g.kerb_height)
        t_kerb = np.minimum(t_kerb, np.where(ok, t, np.inf))
    t = np.minimum(np.minimum(t_road, t_pave), t_kerb)
    piece = np.where(t == t_road, 0, np.where(t == t_pave, 1, 2)).astype(np.int8)
    return t, piece
