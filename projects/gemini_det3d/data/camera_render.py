"""Render the synthetic scene into camera 2's image through the frame's own calibration.

One ray per pixel (through the pixel centre, OpenCV/KITTI convention: pixel (r, c) is the
point u = c, v = r) from camera 2's centre; a z-buffer keeps the nearest surface, so objects
occlude each other in depth order. The sky is a vertical gradient, the ground a textured
road (asphalt cells, dashed lane lines, kerb-side strips), objects take their per-part
colour shaded by the face normal against the sun, everything fades into haze with distance,
and sensor noise is added. Each box is tested only against the pixels inside its projected
bounding rectangle, and the per-pixel directions are separable (x and z depend only on the
column, y only on the row), so the cost is proportional to the image area objects cover.

Besides the image, the renderer reports, per object, its silhouette (pixels it would cover
alone) and its visible pixels (where it is the nearest surface), which give the label's 2D
box and occlusion level.
"""
from dataclasses import dataclass

import numpy as np

from .raycast import ray_plane_y, slab_intersect
from .synthetic_appearance import ground_material, surface_part
from .synthetic_calib import camera_intrinsics

IMAGE_HW = (375, 1242)
LANE_RGB = np.array([210, 210, 200], np.float32)
HAZE_DISTANCE = 260.0  # metres at which 63% of the colour is haze
PIXEL_NOISE = 5  # grey levels: uniform in [-5, 5] (sigma 3.2); integer noise is fast to draw


@dataclass
class RenderStats:
    """Per-object pixel statistics; boxes are inclusive pixel indices (c0, r0, c1, r1), -1 if empty."""
    full_pixels: np.ndarray  # (n,) int: silhouette size if nothing occluded the object
    visible_pixels: np.ndarray  # (n,) int
    full_box: np.ndarray  # (n, 4) int
    visible_box: np.ndarray  # (n, 4) int
    object_id: np.ndarray  # (H, W) int32: index of the object seen at each pixel, -1 ground / sky


def _mask_box(mask, r0, c0):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([c0 + cols[0], r0 + rows[0], c0 + cols[-1], r0 + rows[-1]])


def _project_rect(obj, K, centre, hw):
    """Inclusive pixel rectangle (r0, r1, c0, c1) that contains the box's projection, or None."""
    corners = obj.corners() - centre
    depth = corners[:, 2]
    height, width = hw
    if (depth <= 0.1).all():
        return None
    if (depth <= 0.1).any():  # straddles the camera plane: no finite projection, test all pixels
        return 0, height - 1, 0, width - 1
    u = K[0, 0] * corners[:, 0] / depth + K[0, 2]
    v = K[1, 1] * corners[:, 1] / depth + K[1, 2]
    c0, c1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), width - 1)
    r0, r1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), height - 1)
    if c0 > c1 or r0 > r1:
        return None
    return r0, r1, c0, c1


def _haze(rgb, depth, haze_rgb):
    fog = 1.0 - np.exp(np.asarray(depth, np.float32) * np.float32(-1.0 / HAZE_DISTANCE))[..., None]
    return rgb + (haze_rgb - rgb) * fog


def render_camera(scene, calib: dict, rng: np.random.Generator, hw=IMAGE_HW, cam: str = 'P2'):
    """Render the scene as seen by camera ``cam``.

    Returns:
        image: uint8 (H, W, 3) in BGR order (for cv2.imwrite), and :class:`RenderStats`.
    """
    height, width = hw
    K, centre = camera_intrinsics(calib[cam])
    dx = (np.arange(width) - K[0, 2]) / K[0, 0]  # (W,) ray x per unit depth
    dy = (np.arange(height) - K[1, 2]) / K[1, 1]  # (H,) ray y per unit depth

    # sky: gradient from the horizon up; ground: textured road
    up = np.clip(-dy / 0.3, 0, 1)[:, None, None].astype(np.float32)
    sky = scene.sky_horizon_rgb * (1 - up) + scene.sky_top_rgb * up  # (H, 1, 3)
    image = np.broadcast_to(sky, (height, width, 3)).copy()
    g = scene.ground
    depth = ray_plane_y(centre, dx[None, :], dy[:, None], 1.0, g.y0, g.slope_x, g.slope_z)
    on_ground = np.isfinite(depth)
    s = depth[on_ground].astype(np.float32)
    rows, cols = np.nonzero(on_ground)
    gx, gz = centre[0] + s * dx[cols], centre[2] + s
    kind, noise = ground_material(gx, gz, g.salt)
    ground_rgb = np.where((kind == 2)[:, None], g.offroad_rgb, g.asphalt_rgb) * (0.8 + 0.4 * noise)[:, None]
    ground_rgb[kind == 1] = LANE_RGB
    ground_rgb *= 0.75 + 0.25 * max(0.0, -scene.light_dir[1])
    image[on_ground] = _haze(ground_rgb, s, scene.sky_horizon_rgb)

    n = len(scene.objects)
    object_id = np.full((height, width), -1, np.int32)
    full_pixels = np.zeros(n, np.int64)
    full_box = np.full((n, 4), -1, np.int64)
    rects = [None] * n
    for k, obj in enumerate(scene.objects):
        rect = _project_rect(obj, K, centre, hw)
        if rect is None:
            continue
        r0, r1, c0, c1 = rects[k] = rect
        c, s_ = np.cos(obj.rotation_y), np.sin(obj.rotation_y)
        col_dx = dx[c0:c1 + 1][None, :]
        row_dy = dy[r0:r1 + 1][:, None]
        local_dirs = (c * col_dx - s_, row_dy, s_ * col_dx + c)  # R^T (dx, dy, 1), separable
        body_centre, half = obj.body()
        local_origin = obj.rotation.T @ (centre - body_centre)
        t, axis, sign = slab_intersect(local_origin, local_dirs, half)
        hit = np.isfinite(t)
        full_pixels[k] = int(hit.sum())
        if not full_pixels[k]:
            continue
        full_box[k] = _mask_box(hit, r0, c0)
        sub_depth = depth[r0:r1 + 1, c0:c1 + 1]
        nearer = t < sub_depth
        if not nearer.any():
            continue
        t_hit, axis_hit, sign_hit = t[nearer], axis[nearer], sign[nearer]
        hit_rows = np.nonzero(nearer)[0]
        height_fraction = 0.5 - (local_origin[1] + t_hit * dy[r0 + hit_rows]) / (2 * half[1])
        part = surface_part(obj.kind, height_fraction, axis_hit)
        normals = obj.rotation.T[axis_hit] * sign_hit[:, None]  # (m, 3) world face normals
        diffuse = np.clip(normals @ scene.light_dir, 0, 1)
        rgb = obj.part_rgb[part] * (0.45 + 0.55 * diffuse)[:, None].astype(np.float32)
        sub_image = image[r0:r1 + 1, c0:c1 + 1]
        sub_image[nearer] = _haze(rgb, t_hit, scene.sky_horizon_rgb)
        sub_depth[nearer] = t_hit
        object_id[r0:r1 + 1, c0:c1 + 1][nearer] = k

    visible_pixels = np.bincount(object_id[object_id >= 0], minlength=n)[:n]
    visible_box = np.full((n, 4), -1, np.int64)
    for k in np.flatnonzero(visible_pixels):
        r0, r1, c0, c1 = rects[k]
        visible_box[k] = _mask_box(object_id[r0:r1 + 1, c0:c1 + 1] == k, r0, c0)

    image *= np.float32(scene.exposure)
    image += rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, image.shape, dtype=np.int8)
    np.clip(image, 0, 255, out=image)
    bgr = np.empty(image.shape, np.uint8)
    bgr[...] = image[..., ::-1]
    stats = RenderStats(full_pixels, visible_pixels, full_box, visible_box, object_id)
    return bgr, stats
