"""A small KITTI-layout world where only the camera tells a labelled object from its look-alike.

Every object is the same pedestrian-sized box (about 0.8 x 0.6 x 1.75 m, random yaw) standing
on a flat ground, with a reflectance drawn from one distribution for every object, so the
LiDAR returns of the two kinds have the same statistics. They differ only in the camera:
a labelled object (``Pedestrian`` in ``label_2``) is painted warm (red), its look-alike cool
(blue) at the same brightness, and the look-alike is left unlabelled, as KITTI leaves
look-alikes unlabelled. Objects stand in rows of 2-3, side by side across the line of sight
with kinds drawn independently, so the colour cue is local: only the pixels of the object
itself say which kind it is (a neighbour a few pixels away is as likely to be either kind),
and a projection that misses by a few pixels reads the neighbour or the road.

Small on purpose (the image-path test trains two models in minutes on 2 cores): the images
are 416 x 128 (camera matrices scaled from KITTI's 1242 x 375 by 1/3), objects stand 10-30 m
ahead, and the LiDAR (64 beams, KITTI's HDL-64E elevations) is cast only within the camera's
field of view. Everything is plain vectorised numpy (a slab test against oriented boxes, a
ground plane); from the project only the file writers (``kitti_io``) and the calibration
sampler (``synthetic_calib``) are used. The objects of every frame, both kinds, are written
to ``lookalike_objects.json`` in the root (LiDAR frame) for the evaluation.
"""
import json
from pathlib import Path

import numpy as np

from gemini_det3d.data import kitti_io
from gemini_det3d.data.synthetic_calib import lidar_pose_in_rect, sample_kitti_calib

IMAGE_HW = (128, 416)
IMAGE_SCALE = 416 / 1242  # camera matrices scaled from KITTI's image size to IMAGE_HW
GROUND_Z = -1.73  # the ground in the LiDAR frame (KITTI's Velodyne is 1.73 m above the road)
OBJECT_LWH = (0.8, 0.6, 1.75)  # mmdet3d's Pedestrian anchor, l w h (metres)
ROW_SPACING = 1.1  # centre to centre of neighbours in a row (0.5 m gaps)
LABELLED_RGB = np.array([185., 60., 50.])   # warm
LOOKALIKE_RGB = np.array([50., 70., 185.])  # cool, about the same brightness
ELEVATIONS_DEG = np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)])
AZIMUTH_STEP_DEG = 0.18
OBJECTS_FILE = 'lookalike_objects.json'


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def _ray_boxes(origin, dirs, boxes):
    """Nearest hit of rays ``origin + t * dirs`` with upright oriented boxes.

    Args:
        origin: (3,) in the LiDAR frame. dirs: (N, 3).
        boxes: (M, 7) x y z_bottom l w h yaw (LiDAR frame).

    Returns:
        t (N,) (inf where no box is hit), box index (N,) (-1 where none), face normal (N, 3).
    """
    n = len(dirs)
    best_t = np.full(n, np.inf)
    best_k = np.full(n, -1)
    normal = np.zeros((n, 3))
    azimuth = np.arctan2(dirs[:, 1], dirs[:, 0])
    for k, (x, y, zb, l, w, h, yaw) in enumerate(boxes):
        # only the rays whose azimuth can reach the box (boxes stand well away from the origin)
        rel = np.array([x, y]) - origin[:2]
        reach = np.arcsin(min(1.0, (0.5 * np.hypot(l, w) + 0.05) / np.linalg.norm(rel)))
        near_az = np.abs((azimuth - np.arctan2(rel[1], rel[0]) + np.pi) % (2 * np.pi) - np.pi) <= reach
        idx = np.flatnonzero(near_az)
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])  # box -> LiDAR
        o = rot.T @ (origin - np.array([x, y, zb + h / 2]))
        d = dirs[idx] @ rot  # rows: rot.T @ dir
        half = np.array([l, w, h]) / 2
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (-half - o) * inv, (half - o) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        near, far = lo.max(1), hi.min(1)
        hit = (far >= near) & (near > 0) & (near < best_t[idx])
        if not hit.any():
            continue
        rows = idx[hit]
        axis = lo[hit].argmax(1)
        face = np.zeros((len(rows), 3))
        face[np.arange(len(rows)), axis] = -np.sign(d[hit][np.arange(len(rows)), axis])
        best_t[rows], best_k[rows], normal[rows] = near[hit], k, face @ rot.T
    return best_t, best_k, normal


def _ray_ground(origin, dirs):
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (GROUND_Z - origin[2]) / dirs[:, 2]
    return np.where((t > 0) & np.isfinite(t), t, np.inf)


# --------------------------------------------------------------------------------------------
# sensors
# --------------------------------------------------------------------------------------------
def _scan(boxes, reflectance, half_fov, rng):
    """LiDAR points (N, 4) within the camera's field of view (plus a margin)."""
    az = np.deg2rad(np.arange(-half_fov - 3, half_fov + 3, AZIMUTH_STEP_DEG) + rng.uniform(0, AZIMUTH_STEP_DEG))
    el = np.deg2rad(ELEVATIONS_DEG)
    az, el = np.meshgrid(az, el)
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    origin = np.zeros(3)
    t_ground = _ray_ground(origin, dirs)
    t_box, k_box, _ = _ray_boxes(origin, dirs, boxes)
    on_box = t_box < t_ground
    t = np.where(on_box, t_box, t_ground)
    refl = np.where(on_box, reflectance[np.maximum(k_box, 0)], 0.15)
    keep = (t < 70) & (rng.random(len(t)) > 0.05)
    t, refl, dirs = t[keep], refl[keep], dirs[keep]
    refl = np.clip(refl + rng.normal(0, 0.03, len(t)), 0, 0.99)
    xyz = dirs * (t + rng.normal(0, 0.02, len(t)))[:, None]
    return np.concatenate([xyz, np.round(refl, 2)[:, None]], 1).astype(np.float32)


def _render(boxes, colours, calib, rng):
    """Camera-2 picture (H, W, 3) BGR uint8 through the frame's own (scaled) P2."""
    height, width = IMAGE_HW
    K = calib['P2'][:, :3]
    centre_rect = -np.linalg.solve(K, calib['P2'][:, 3])
    rot, origin = lidar_pose_in_rect(calib)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays_rect = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
    dirs = rays_rect @ rot  # rows: rot.T @ ray (rect -> LiDAR)
    cam = rot.T @ (centre_rect - origin)
    t_ground = _ray_ground(cam, dirs)
    t_box, k_box, normal = _ray_boxes(cam, dirs, boxes)
    rgb = np.empty((len(dirs), 3))
    up = np.clip(dirs[:, 2] / np.linalg.norm(dirs, axis=1) / 0.3, 0, 1)[:, None]
    rgb[:] = np.array([200., 205., 210.]) * (1 - up) + np.array([120., 150., 200.]) * up
    ground = np.isfinite(t_ground) & (t_ground <= t_box)
    gx = cam[0] + t_ground[ground] * dirs[ground, 0]
    gy = cam[1] + t_ground[ground] * dirs[ground, 1]
    cell = (np.floor(gx / 0.5).astype(np.int64) * 7919 + np.floor(gy / 0.5).astype(np.int64) * 104729) % 997
    rgb[ground] = (95 + 25 * (cell / 997.0))[:, None] * np.array([1.0, 1.0, 0.97])
    on_box = t_box < t_ground
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.55 + 0.45 * np.abs(normal[on_box] @ light)
    rgb[on_box] = colours[k_box[on_box]] * shade[:, None]
    rgb = rgb.reshape(height, width, 3) + rng.integers(-6, 7, (height, width, 3))
    image = np.clip(rgb, 0, 255).astype(np.uint8)
    return image[..., ::-1].copy(), np.where(on_box, k_box, -1).reshape(height, width)


def _sample_objects(rng, half_fov):
    """Rows of 2-3 side-by-side objects across the line of sight, 10-30 m ahead."""
    boxes, kinds = [], []
    for _ in range(40):
        if len(boxes) >= 12:
            break
        dist = rng.uniform(10, 30)
        bearing = np.deg2rad(rng.uniform(-0.8, 0.8) * half_fov)
        n = int(rng.integers(2, 4))
        ax, ay = np.cos(bearing), np.sin(bearing)  # line of sight
        px, py = -ay, ax  # across it
        offsets = (np.arange(n) - (n - 1) / 2) * ROW_SPACING
        cand = np.array([[dist * ax + o * px, dist * ay + o * py] for o in offsets])
        if np.any(np.abs(np.rad2deg(np.arctan2(cand[:, 1], cand[:, 0]))) > half_fov - 2):
            continue
        if boxes and np.min(np.linalg.norm(np.array(boxes)[:, None, :2] - cand[None], axis=2)) < 2.0:
            continue
        for x, y in cand:
            lwh = np.array(OBJECT_LWH) * rng.uniform(0.95, 1.05, 3)
            boxes.append([x, y, GROUND_Z, *lwh, rng.uniform(-np.pi, np.pi)])
            kinds.append(int(rng.random() < 0.5))  # 1 labelled, 0 look-alike
    return np.array(boxes), np.array(kinds)


def _label(box, calib, pixels):
    """KITTI label dict of one labelled object; 2D box from its visible pixels."""
    rot, origin = lidar_pose_in_rect(calib)
    x, y, zb, l, w, h, yaw = box
    location = rot @ np.array([x, y, zb]) + origin
    rows, cols = np.nonzero(pixels)
    bbox = [cols.min(), rows.min(), cols.max(), rows.max()] if len(rows) else [0, 0, 0, 0]
    ry = -yaw - np.pi / 2
    ry = (ry + np.pi) % (2 * np.pi) - np.pi
    alpha = ry - np.arctan2(location[0], location[2])
    alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
    return dict(type='Pedestrian', truncated=0.0, occluded=0, alpha=alpha, bbox=bbox,
                hwl=[h, w, l], location=location, rotation_y=ry)


def make_lookalike_world(root, num_train=48, num_val=16, seed=0):
    """Write the world as a KITTI tree under ``root`` (``training/``, ``ImageSets/``).

    Returns:
        dict: frame name -> list of objects ``dict(center=[x, y, z_bottom], lwh, yaw,
        labelled)`` in the LiDAR frame (also written to ``root/lookalike_objects.json``), and
        the split lists under the keys ``'train'`` and ``'val'``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for folder in ('velodyne', 'image_2', 'calib', 'label_2'):
        (root / 'training' / folder).mkdir(parents=True, exist_ok=True)
    (root / 'ImageSets').mkdir(parents=True, exist_ok=True)
    objects = {}
    names = [kitti_io.frame_name(i) for i in range(num_train + num_val)]
    for name in names:
        calib = sample_kitti_calib(rng)
        for key in ('P0', 'P1', 'P2', 'P3'):
            calib[key] = np.diag([IMAGE_SCALE, IMAGE_SCALE, 1.0]) @ calib[key]
        paths = kitti_io.kitti_frame_paths(root, 'training', name)
        kitti_io.write_calib(paths['calib'], calib)
        calib = kitti_io.read_calib(paths['calib'])  # render with exactly the written numbers
        half_fov = np.rad2deg(np.arctan(IMAGE_HW[1] / 2 / calib['P2'][0, 0]))
        boxes, kinds = _sample_objects(rng, half_fov)
        reflectance = rng.uniform(0.2, 0.6, len(boxes))  # the same for both kinds
        colours = np.where(kinds[:, None] == 1, LABELLED_RGB, LOOKALIKE_RGB)
        colours = colours * rng.uniform(0.8, 1.2, (len(boxes), 1))
        kitti_io.write_velodyne(paths['velodyne'], _scan(boxes, reflectance, half_fov + 2, rng))
        image, seen = _render(boxes, colours, calib, rng)
        kitti_io.write_image(paths['image_2'], image)
        kitti_io.write_label(paths['label_2'], [
            _label(box, calib, seen == k) for k, box in enumerate(boxes) if kinds[k] == 1])
        objects[name] = [dict(center=[float(v) for v in box[:3]], lwh=[float(v) for v in box[3:6]],
                              yaw=float(box[6]), labelled=bool(kind)) for box, kind in zip(boxes, kinds)]
    kitti_io.write_imageset(root / 'ImageSets' / 'train.txt', names[:num_train])
    kitti_io.write_imageset(root / 'ImageSets' / 'val.txt', names[num_train:])
    kitti_io.write_imageset(root / 'ImageSets' / 'test.txt', [])
    world = dict(objects, train=names[:num_train], val=names[num_train:])
    (root / OBJECTS_FILE).write_text(json.dumps(world))
    return world
