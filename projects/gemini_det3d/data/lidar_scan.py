"""A 64-beam spinning LiDAR (Velodyne HDL-64E-like) ray-cast against a synthetic scene.

Beams: 32 upper lasers from +2.0 to -8.33 deg and 32 lower ones from -8.83 to -24.9 deg
(the HDL-64E's two blocks), 2000 azimuth steps per turn (0.18 deg) -> 128k rays. Each ray
keeps its nearest hit (occlusion); the range gets Gaussian noise (2 cm); reflectance comes
from the surface's material and the incidence angle; weak or far returns drop out
(maximum range 80-120 m with reflectance, and a growing dropout probability near it).
Only the sub-grid of beams x azimuths that can see a box is tested against it.
"""
import numpy as np

from .raycast import ray_plane_y, slab_intersect
from .synthetic_appearance import ground_material, surface_part
from .synthetic_calib import lidar_pose_in_rect

HDL64_ELEVATIONS_DEG = np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)])
NUM_AZIMUTH = 2000
RANGE_NOISE = 0.02  # metres (1 sigma)
MIN_MAX_RANGE, MAX_MAX_RANGE = 80.0, 120.0
GROUND_REFLECTANCE = np.array([0.15, 0.75, 0.28], np.float32)  # asphalt, lane marking, off-road


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
    ranges = ray_plane_y(origin, dirs[..., 0], dirs[..., 1], dirs[..., 2], g.y0, g.slope_x, g.slope_z)
    reflect = np.zeros(ranges.shape, np.float32)
    on_ground = np.isfinite(ranges)
    hit = origin + ranges[on_ground][:, None] * dirs[on_ground]
    kind, noise = ground_material(hit[:, 0], hit[:, 2], g.salt)
    reflect[on_ground] = (GROUND_REFLECTANCE[kind] * (0.75 + 0.5 * noise) *
                          _incidence_gain(dirs[on_ground][:, 1]))

    for obj in scene.objects:
        beams, az_idx = _box_subgrid(obj, rot, origin, elevation, azimuth0, num_azimuth)
        if beams.size == 0:
            continue
        grid = np.ix_(beams, az_idx)
        local_dirs = dirs[grid] @ obj.rotation  # (nb, na, 3) in the box frame
        body_centre, half = obj.body()
        local_origin = obj.rotation.T @ (origin - body_centre)
        t, axis, _ = slab_intersect(local_origin, (local_dirs[..., 0], local_dirs[..., 1],
                                                   local_dirs[..., 2]), half)
        sub_ranges = ranges[grid]
        nearer = t < sub_ranges
        if not nearer.any():
            continue
        t_hit, axis_hit, d_hit = t[nearer], axis[nearer], local_dirs[nearer]
        height_fraction = 0.5 - (local_origin[1] + t_hit * d_hit[:, 1]) / (2 * half[1])
        part = surface_part(obj.kind, height_fraction, axis_hit)
        cos_inc = np.take_along_axis(d_hit, axis_hit[:, None].astype(np.int64), 1)[:, 0]
        sub_reflect = reflect[grid]
        sub_ranges[nearer] = t_hit
        sub_reflect[nearer] = obj.part_reflectance[part] * _incidence_gain(cos_inc)
        ranges[grid] = sub_ranges
        reflect[grid] = sub_reflect

    valid = np.isfinite(ranges)
    r = ranges[valid]
    refl = np.clip(reflect[valid] + rng.normal(0, 0.02, r.shape), 0, 0.99)
    max_range = MIN_MAX_RANGE + (MAX_MAX_RANGE - MIN_MAX_RANGE) * np.clip(refl / 0.5, 0, 1)
    drop_prob = 0.02 + 0.6 * np.clip((r - 0.7 * max_range) / (0.3 * max_range), 0, 1)
    keep = (r < max_range) & (rng.random(r.shape) >= drop_prob)
    r_noisy = r[keep] + rng.normal(0, RANGE_NOISE, int(keep.sum()))
    xyz = dirs_lidar[valid][keep] * r_noisy[:, None]
    intensity = np.round(refl[keep], 2)
    return np.concatenate([xyz, intensity[:, None]], axis=1).astype(np.float32)
