"""Render the synthetic scene into camera 2's image through the frame's own calibration.

One ray per pixel (through the pixel centre, OpenCV/KITTI convention: pixel (r, c) is the
point u = c, v = r) from camera 2's centre; a z-buffer keeps the nearest surface, so objects
occlude each other in depth order. What makes it closer to a real camera than flat colours:

* textured surfaces: value noise on every surface at its material's scale (asphalt grain,
  pavement slabs, fabric, bark, foliage), lane markings and kerb stones;
* shading and cast shadows: Lambertian shading of each primitive's normal against the sun,
  plus sky light; objects cast shadows on the ground (shadow rays from the ground points
  towards the sun, tested against the objects' primitives); overcast frames have weak sun;
* exposure and white balance vary per frame (automatic exposure / white balance of a real
  camera), with haze at distance and sensor noise;
* foliage and spoked wheels (inside their tyre) have gaps the camera sees through (the LiDAR instead returns
  part of its beams from them, :mod:`.lidar_scan`), so bushes hide parts of what is behind.

Each object is tested only against the pixels inside its projected label box, and only the
pixels whose rays enter that box are tested against its primitives.

Besides the image, the renderer reports, per object, its silhouette (pixels it would cover
alone) and its visible pixels (where it is the nearest surface), which give the label's
occlusion level.
"""
from dataclasses import dataclass

import numpy as np

from .lidar_scan import cast_parts
from .raycast import box_entry, primitive_intersect, ray_ground
from .synthetic_appearance import (ASPHALT, CAMERA_GAPS, GRASS, KERB, MARKING, MATERIAL_ID,
                                   PAVEMENT, TEXTURE_CELL, TEXTURE_CONTRAST, ground_material,
                                   value_noise)
from .synthetic_calib import camera_intrinsics

IMAGE_HW = (375, 1242)
LANE_RGB = np.array([210, 210, 200], np.float32)
KERB_RGB = np.array([175, 172, 165], np.float32)
HAZE_DISTANCE = 260.0  # metres at which 63% of the colour is haze
PIXEL_NOISE = 5  # grey levels: uniform in [-5, 5] (sigma 3.2); integer noise is fast to draw
AMBIENT = 0.45  # share of light from the sky (lit in shadows too)
GLASS, SPOKES = MATERIAL_ID['glass'], MATERIAL_ID['spokes']


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


def _ground_shadow(scene, points, ground_index, K, centre):
    """(N,) 1 where a ground point (N, 3) is in the shadow of an object, else 0 (between for
    porous foliage). ``ground_index`` (H, W): each pixel's index into ``points``, -1 if none."""
    shadow = np.zeros(len(points), np.float32)
    light = scene.light_dir
    if light[1] > -0.05:
        return shadow
    height, width = ground_index.shape
    for obj in scene.objects:
        corners = obj.corners()
        base_y = corners[:, 1].max()
        drop = (base_y - corners[:, 1]) / -light[1]  # how far along the light each corner is above the base
        foot = corners[:, [0, 2]] - drop[:, None] * light[[0, 2]]
        lo = np.minimum(foot.min(0), corners[:, [0, 2]].min(0))
        hi = np.maximum(foot.max(0), corners[:, [0, 2]].max(0))
        # the pixels that can show that patch of ground: its projection (kerb-height slack)
        patch = np.array([[x, y, z] for x in (lo[0], hi[0]) for z in (lo[1], hi[1])
                          for y in (base_y - 0.3, base_y + 0.3)]) - centre
        if (patch[:, 2] <= 0.5).all():
            continue
        if (patch[:, 2] <= 0.5).any():
            r0, r1, c0, c1 = 0, height - 1, 0, width - 1
        else:
            u = K[0, 0] * patch[:, 0] / patch[:, 2] + K[0, 2]
            v = K[1, 1] * patch[:, 1] / patch[:, 2] + K[1, 2]
            c0, c1 = max(int(u.min()) - 2, 0), min(int(u.max()) + 2, width - 1)
            r0, r1 = max(int(v.min()) - 2, 0), min(int(v.max()) + 2, height - 1)
            if c0 > c1 or r0 > r1:
                continue
        sel = ground_index[r0:r1 + 1, c0:c1 + 1].ravel()
        sel = sel[sel >= 0]
        sel = sel[(points[sel, 0] >= lo[0]) & (points[sel, 0] <= hi[0]) &
                  (points[sel, 2] >= lo[1]) & (points[sel, 2] <= hi[1])]
        if sel.size == 0:
            continue
        local = (points[sel] - obj.center) @ obj.rotation
        ldir = light @ obj.rotation
        t_box = box_entry(local.T, ldir, obj.lhw / 2)
        sel, local = sel[np.isfinite(t_box)], local[np.isfinite(t_box)]
        p = obj.parts
        for k in range(len(p.shape)):
            if sel.size == 0:
                break
            o = (local - p.centre[k]) @ p.axes[k]
            d = ldir @ p.axes[k]
            t, _ = primitive_intersect(p.shape[k], o.T, d, p.half[k])
            hit = np.isfinite(t)
            shadow[sel[hit]] = np.maximum(shadow[sel[hit]], 1.0 - CAMERA_GAPS[p.material[k]])
            sel, local = sel[~hit], local[~hit]
    return shadow


def render_camera(scene, calib: dict, rng: np.random.Generator, hw=IMAGE_HW, cam: str = 'P2'):
    """Render the scene as seen by camera ``cam``.

    Returns:
        image: uint8 (H, W, 3) in BGR order (for cv2.imwrite), and :class:`RenderStats`.
    """
    height, width = hw
    K, centre = camera_intrinsics(calib[cam])
    dx = (np.arange(width) - K[0, 2]) / K[0, 0]  # (W,) ray x per unit depth
    dy = (np.arange(height) - K[1, 2]) / K[1, 1]  # (H,) ray y per unit depth

    # sky: gradient from the horizon up; ground: textured road, kerb, pavement and grass
    up = np.clip(-dy / 0.3, 0, 1)[:, None, None].astype(np.float32)
    sky = scene.sky_horizon_rgb * (1 - up) + scene.sky_top_rgb * up  # (H, 1, 3)
    image = np.broadcast_to(sky, (height, width, 3)).copy()
    depth = np.full((height, width), np.inf)
    g = scene.ground
    rows_below = np.flatnonzero(dy > -0.02)
    r_lo = rows_below[0] if rows_below.size else height
    t_ground, piece = ray_ground(centre, dx[None, :], dy[r_lo:, None], 1.0, g)
    depth[r_lo:] = t_ground
    on_ground = np.isfinite(depth)
    s = depth[on_ground]
    rows, cols = np.nonzero(on_ground)
    gx, gy, gz = centre[0] + s * dx[cols], centre[1] + s * dy[rows], centre[2] + s
    kind, noise = ground_material(gx, gz, piece[rows - r_lo, cols], g)
    palette = np.zeros((5, 3), np.float32)
    palette[[ASPHALT, MARKING, PAVEMENT, KERB, GRASS]] = (g.asphalt_rgb, LANE_RGB, g.pavement_rgb, KERB_RGB,
                                                         g.grass_rgb)
    base = palette[kind]
    slab = value_noise(gx, 0.0, gz, 0.6, g.salt + 1)  # pavement slabs / grass patches
    grain = np.where(kind == ASPHALT, 0.8 + 0.4 * noise, 0.85 + 0.15 * noise + 0.15 * slab)
    normal_light = np.where(piece[rows - r_lo, cols] == 2, np.abs(scene.light_dir[0]), -scene.light_dir[1])
    ground_index = np.full((height, width), -1, np.int64)
    ground_index[rows, cols] = np.arange(rows.size)
    shadow = _ground_shadow(scene, np.stack([gx, gy, gz], 1), ground_index, K, centre)
    light = AMBIENT + (1 - AMBIENT) * scene.sun * normal_light * (1 - shadow)
    ground_rgb = base.astype(np.float32) * (grain * light)[:, None].astype(np.float32)
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
        # separable cull: the pixels whose rays enter the label box (R^T (dx, dy, 1) per column / row)
        c, s_ = np.cos(obj.rotation_y), np.sin(obj.rotation_y)
        col_dx = dx[c0:c1 + 1][None, :]
        local_dirs = (c * col_dx - s_, dy[r0:r1 + 1][:, None], s_ * col_dx + c)
        t_box = box_entry(obj.rotation.T @ (centre - obj.center), local_dirs, obj.lhw / 2)
        sub_r, sub_c = np.nonzero(np.isfinite(t_box))
        sub_r += r0
        sub_c += c0
        dirs = np.stack([dx[sub_c], dy[sub_r], np.ones(sub_r.size)], 1)
        t, index, normal = cast_parts(obj, centre, dirs, np.full(sub_r.size, np.inf))
        hit = np.flatnonzero(index >= 0)
        if hit.size:
            # the camera sees through foliage gaps and between spokes
            prim = index[hit]
            p = obj.parts
            point = centre + t[hit, None] * dirs[hit]
            local = (point - obj.center) @ obj.rotation
            gaps = CAMERA_GAPS[p.material[prim]]
            holed = gaps > 0
            if holed.any():
                hole_noise = value_noise(local[:, 0], local[:, 1], local[:, 2], 0.06, k + 7)
                spokes = np.flatnonzero(p.material[prim] == SPOKES)
                if spokes.size:  # a wheel: a solid tyre ring round the spokes
                    q = np.einsum('ni,nij->nj', local[spokes] - p.centre[prim[spokes]], p.axes[prim[spokes]])
                    h = p.half[prim[spokes]]
                    tyre = (q[:, 0] / h[:, 0]) ** 2 + (q[:, 2] / h[:, 2]) ** 2 > 0.78
                    gaps = gaps.copy()
                    gaps[spokes[tyre]] = 0.0
                keep = ~(holed & (hole_noise < gaps))
                hit, prim, point, local = hit[keep], prim[keep], point[keep], local[keep]
        full_pixels[k] = hit.size
        if not hit.size:
            continue
        mask = np.zeros((r1 - r0 + 1, c1 - c0 + 1), bool)
        mask[sub_r[hit] - r0, sub_c[hit] - c0] = True
        full_box[k] = _mask_box(mask, r0, c0)
        rr, cc = sub_r[hit], sub_c[hit]
        nearer = t[hit] < depth[rr, cc]
        if not nearer.any():
            continue
        hit, prim, local, rr, cc = hit[nearer], prim[nearer], local[nearer], rr[nearer], cc[nearer]
        th = t[hit]
        mat = p.material[prim]
        tex = value_noise(local[:, 0], local[:, 1], local[:, 2], TEXTURE_CELL[mat], k * 131 + 3)
        tex = 1.0 + TEXTURE_CONTRAST[mat] * (2.0 * tex - 1.0)
        diffuse = np.clip(normal[hit] @ scene.light_dir, 0, 1) * scene.sun
        rgb = p.rgb[prim] * (tex * (AMBIENT + (1 - AMBIENT) * diffuse))[:, None].astype(np.float32)
        glass = mat == GLASS
        if glass.any():  # windows mirror part of the sky
            rgb[glass] = 0.7 * rgb[glass] + 0.3 * scene.sky_horizon_rgb * 0.8
        image[rr, cc] = _haze(rgb, th, scene.sky_horizon_rgb)
        depth[rr, cc] = th
        object_id[rr, cc] = k

    visible_pixels = np.bincount(object_id[object_id >= 0], minlength=n)[:n]
    visible_box = np.full((n, 4), -1, np.int64)
    for k in np.flatnonzero(visible_pixels):
        r0, r1, c0, c1 = rects[k]
        visible_box[k] = _mask_box(object_id[r0:r1 + 1, c0:c1 + 1] == k, r0, c0)

    image *= np.float32(scene.exposure) * scene.white_balance  # auto exposure / white balance
    image += rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, image.shape, dtype=np.int8)
    np.clip(image, 0, 255, out=image)
    bgr = np.empty(image.shape, np.uint8)
    bgr[...] = image[..., ::-1]
    stats = RenderStats(full_pixels, visible_pixels, full_box, visible_box, object_id)
    return bgr, stats
