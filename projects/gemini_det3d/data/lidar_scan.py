"""A 64-beam spinning LiDAR (Velodyne HDL-64E-like) ray-cast against a synthetic scene.

Beams: 32 upper lasers from +2.0 to -8.33 deg and 32 lower ones from -8.83 to -24.9 deg
(the HDL-64E's two blocks), 2000 azimuth steps per turn (0.18 deg) -> 128k rays. Each ray
keeps its nearest return (occlusion); the range gets Gaussian noise (2 cm).

What a return is made of follows the physics of a 905 nm time-of-flight sensor:

* the surface's reflectance comes from its material (:mod:`.synthetic_appearance`), scaled by
  the incidence angle (Lambertian-like, plus a floor for rough surfaces);
* glass and foliage return only part of the beams that reach them (``lidar_return``): the
  others go on to what is behind (a car's seats, the far side of a hedge);
* weak returns drop out: below :data:`WEAK_RETURN` the probability of a detection falls with
  the reflectance (black paint, dark clothes, glass lose most of their points), and far
  returns fade near the maximum range (80-120 m with reflectance).

Only the sub-grid of beams x azimuths that can see an object's label box is tested against
its primitives, and only the rays that enter the box.
"""
import numpy as np

from .raycast import box_entry, primitive_intersect, ray_ground
from .synthetic_appearance import GROUND_REFLECTANCE, LIDAR_RETURN, ground_material
from .synthetic_calib import lidar_pose_in_rect

HDL64_ELEVATIONS_DEG = np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)])
NUM_AZIMUTH = 2000
RANGE_NOISE = 0.02  # metres (1 sigma)
MIN_MAX_RANGE, MAX_MAX_RANGE = 80.0, 120.0
WEAK_RETURN = 0.1  # effective reflectance below which detections start to fail


def hdl64_directions(azimuth_offset: float = 0.0, num_azimuth: int = NUM_AZIMUTH):
    """Unit ray directions (64, A, 3) in the LiDAR frame, elevations (64,), azimuths (A,)."""
    elevation = np.deg2rad(HDL64_ELEVATIONS_DEG)
    azimuth = azimuth_offset + np.arange(num_azimuth) * (2 * np.pi / num_azimuth)
    ce = np.cos(elevation)[:, None]
    dirs = np.stack([ce * np.cos(azimuth)[None], ce * np.sin(azimuth)[None],
                     np.broadcast_to(np.sin(elevation)[:, None], (len(elevation), num_azimuth))], -1)
    return dirs, elevation, azimuth


def _incidence_gain(cos_incidence):
    return 0.35 + 0.65 * np.abs(cos_incidence)


def _box_subgrid(obj, rot, origin, elevation, azimuth0, num_azimuth):
    """Beam indices and azimuth indices whose rays can reach the box (conservative)."""
    corners = (obj.corners() - origin) @ rot  # (8, 3) in the LiDAR frame
    az = np.arctan2(corners[:, 1], corners[:, 0])
    centre = (obj.center - origin) @ rot
    az_c = np.arctan2(centre[1], centre[0])
    rel = (az - az_c + np.pi) % (2 * np.pi) - np.pi
    step = 2 * np.pi / num_azimuth
    if rel.max() - rel.min() > np.pi * 0.9:  # box around us: test every azimuth
        az_idx = np.arange(num_azimuth)
    else:
        lo = int(np.floor((az_c + rel.min() - azimuth0) / step)) - 1
        hi = int(np.ceil((az_c + rel.max() - azimuth0) / step)) + 1
        az_idx = np.arange(lo, hi + 1) % num_azimuth
    # elevation extremes of a box are not always at corners (closest point of an edge): bound them
    rho_c = np.hypot(centre[0], centre[1])
    radius = 0.5 * np.linalg.norm(obj.lhw)
    rho_min = max(rho_c - radius, 1e-3)
    rho_max = rho_c + radius
    z_lo, z_hi = corners[:, 2].min(), corners[:, 2].max()
    el_hi = np.arctan2(z_hi, rho_min if z_hi > 0 else rho_max)
    el_lo = np.arctan2(z_lo, rho_min if z_lo < 0 else rho_max)
    margin = np.deg2rad(0.2)
    beams = np.flatnonzero((elevation >= el_lo - margin) & (elevation <= el_hi + margin))
    return beams, az_idx


def cast_parts(obj, origin, dirs, limit, rng=None):
    """Nearest hit of camera-frame rays with an object's primitives.

    Args:
        obj: a :class:`~.synthetic_scene.SceneObject`.
        origin: (3,) camera-frame origin; dirs: (M, 3) camera-frame directions.
        limit: (M,) only hits nearer than this count (the nearest surface so far).
        rng: if given, glass and foliage return each ray with their ``lidar_return``
            probability (the LiDAR); without it every primitive is solid.

    Returns:
        t (M,) (inf: no hit nearer than ``limit``), primitive index (M,) (-1: none) and the
        camera-frame unit normal (M, 3) at the hit.
    """
    rotation, p = obj.rotation, obj.parts
    local_origin = rotation.T @ (origin - obj.center)
    local_dirs = dirs @ rotation
    t_box = box_entry(local_origin, local_dirs.T, obj.lhw / 2)
    best = np.full(len(dirs), np.inf)
    index = np.full(len(dirs), -1, np.int64)
    normal = np.zeros((len(dirs), 3))
    cand = np.flatnonzero(t_box < limit)
    if cand.size == 0:
        return best, index, normal
    d_box = local_dirs[cand]
    best_c = np.asarray(limit, np.float64)[cand].copy()
    idx_c = np.full(cand.size, -1, np.int64)
    n_c = np.zeros((cand.size, 3))
    for k in range(len(p.shape)):
        axes = p.axes[k]
        o = axes.T @ (local_origin - p.centre[k])
        d = d_box @ axes
        t, n = primitive_intersect(p.shape[k], o, (d[:, 0], d[:, 1], d[:, 2]), p.half[k])
        if rng is not None and LIDAR_RETURN[p.material[k]] < 1:
            t = np.where(rng.random(t.shape) < LIDAR_RETURN[p.material[k]], t, np.inf)
        nearer = t < best_c
        if nearer.any():
            best_c[nearer] = t[nearer]
            idx_c[nearer] = k
            n_c[nearer] = np.stack(n, 1)[nearer] @ axes.T
    hit = idx_c >= 0
    best[cand[hit]] = best_c[hit]
    index[cand[hit]] = idx_c[hit]
    normal[cand[hit]] = n_c[hit] @ rotation.T
    return best, index, normal


def simulate_lidar(scene, calib: dict, rng: np.random.Generator, num_azimuth: int = NUM_AZIMUTH):
    """Scan ``scene`` from the LiDAR pose given by ``calib``.

    Returns:
        float32 array (N, 4): x, y, z in the LiDAR frame, reflectance 0..0.99.
    """
    rot, origin = lidar_pose_in_rect(calib)
    azimuth0 = rng.uniform(0, 2 * np.pi / num_azimuth)
    dirs_lidar, elevation, _ = hdl64_directions(azimuth0, num_azimuth)
    dirs = dirs_lidar @ rot.T  # (64, A, 3) in the camera frame

    g = scene.ground
    ranges = np.full(dirs.shape[:2], np.inf)
    reflect = np.zeros(ranges.shape, np.float32)
    down = dirs[..., 1] > -0.02  # the ground is never above the horizon by more than this
    d_down = dirs[down]
    t_ground, piece = ray_ground(origin, d_down[:, 0], d_down[:, 1], d_down[:, 2], g)
    ranges[down] = t_ground
    on_ground = np.isfinite(t_ground)
    hit = origin + t_ground[on_ground][:, None] * d_down[on_ground]
    kind, noise = ground_material(hit[:, 0], hit[:, 2], piece[on_ground], g)
    cos_inc = np.where(piece[on_ground] == 2, d_down[on_ground][:, 0], d_down[on_ground][:, 1])
    ground_refl = np.zeros(len(t_ground), np.float32)
    ground_refl[on_ground] = GROUND_REFLECTANCE[kind] * (0.75 + 0.5 * noise) * _incidence_gain(cos_inc)
    reflect[down] = ground_refl

    for obj in scene.objects:
        beams, az_idx = _box_subgrid(obj, rot, origin, elevation, azimuth0, num_azimuth)
        if beams.size == 0:
            continue
        grid = np.ix_(beams, az_idx)
        sub_dirs = dirs[grid].reshape(-1, 3)
        sub_ranges = ranges[grid].reshape(-1)
        t, index, normal = cast_parts(obj, origin, sub_dirs, sub_ranges, rng)
        nearer = index >= 0
        if not nearer.any():
            continue
        cos_inc = (normal[nearer] * sub_dirs[nearer]).sum(1)
        sub_reflect = reflect[grid].reshape(-1)
        sub_ranges[nearer] = t[nearer]
        sub_reflect[nearer] = obj.parts.reflectance[index[nearer]] * _incidence_gain(cos_inc)
        ranges[grid] = sub_ranges.reshape(len(beams), len(az_idx))
        reflect[grid] = sub_reflect.reshape(len(beams), len(az_idx))

    valid = np.isfinite(ranges)
    r = ranges[valid]
    true_refl = reflect[valid]
    refl = np.clip(true_refl + rng.normal(0, 0.02, r.shape), 0, 0.99)
    max_range = MIN_MAX_RANGE + (MAX_MAX_RANGE - MIN_MAX_RANGE) * np.clip(refl / 0.5, 0, 1)
    drop_prob = 0.02 + 0.6 * np.clip((r - 0.7 * max_range) / (0.3 * max_range), 0, 1)
    detect = np.clip(true_refl / WEAK_RETURN, 0.05, 1.0)  # weak echoes fall below the threshold
    keep = (r < max_range) & (rng.random(r.shape) >= drop_prob) & (rng.random(r.shape) < detect)
    r_noisy = r[keep] + rng.normal(0, RANGE_NOISE, int(keep.sum()))
    xyz = dirs_lidar[valid][keep] * r_noisy[:, None]
    intensity = np.round(refl[keep], 2)
    return np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32)
