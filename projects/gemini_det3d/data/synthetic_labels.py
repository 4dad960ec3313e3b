"""KITTI label lines of a rendered synthetic scene.

KITTI's annotators labelled 3D boxes in the point clouds and the 2D boxes come from projecting
them into the image (KITTI object devkit readme), so a KITTI 2D box covers the whole object,
occluded parts included, and is cut only by the image border. The same here:

* an object of a labelled class gets a line when its whole box is in front of the camera and
  its rendered silhouette (the pixels it covers when nothing is in front of it) is not empty;
* 2D box: the bounding rectangle of the projected 3D box (exact: a box projects onto the convex
  hull of its corners), clipped to KITTI's ``[0, W-1] x [0, H-1]``;
* truncated: the fraction of that rectangle outside the image;
* occluded, from the rendering: the fraction of the silhouette's pixels hidden by nearer
  surfaces gives 0 (<= 10 %), 1 (<= 50 %) or 2; fewer than :data:`MIN_VISIBLE_PIXELS` visible
  pixels give 3 ("unknown");
* alpha: ``rotation_y - arctan2(x, z)`` of the box's location, wrapped to [-pi, pi)
  (as mmdet3d's KittiMetric writes it);
* ``DontCare`` objects (too far to annotate) get only their 2D box, if visible.

Why not the box of the visible pixels only: the LiDAR sits 0.27 m behind and 0.08 m above the
camera, so near occluders hide different parts of an object from the two sensors, and an
occluded object's LiDAR points often project outside the box of its camera-visible pixels.
"""
from typing import List

import numpy as np

from .synthetic_calib import camera_intrinsics

MIN_VISIBLE_PIXELS = 10
OCCLUSION_LEVELS = (0.10, 0.50)  # hidden fraction up to which occluded = 0, 1


def projected_rect(obj, calib: dict, cam: str = 'P2') -> np.ndarray:
    """(x1, y1, x2, y2) bounding the projection of the object's 3D box (not clipped).
    The box must be in front of the camera."""
    K, centre = camera_intrinsics(calib[cam])
    corners = obj.corners() - centre
    u = K[0, 0] * corners[:, 0] / corners[:, 2] + K[0, 2]
    v = K[1, 1] * corners[:, 1] / corners[:, 2] + K[1, 2]
    return np.array([u.min(), v.min(), u.max(), v.max()])


def _clip_to_image(rect, hw):
    height, width = hw
    return np.clip(rect, 0.0, [width - 1.0, height - 1.0, width - 1.0, height - 1.0])


def _truncation(rect, hw):
    x1, y1, x2, y2 = rect
    cx1, cy1, cx2, cy2 = _clip_to_image(rect, hw)
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    return float(np.clip(1.0 - (cx2 - cx1) * (cy2 - cy1) / area, 0.0, 1.0))


def wrap_angle(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def occlusion_level(visible_pixels: int, full_pixels: int) -> int:
    """KITTI's occluded field from rendered pixel counts."""
    if visible_pixels < MIN_VISIBLE_PIXELS:
        return 3
    hidden = 1.0 - visible_pixels / full_pixels
    return int(np.searchsorted(OCCLUSION_LEVELS, hidden, side='left'))


def label_objects(scene, stats, calib: dict, hw, cam: str = 'P2') -> List[dict]:
    """Label dicts (as :func:`kitti_io.write_label` takes them) for a rendered scene.

    Args:
        scene: the :class:`~.synthetic_scene.Scene`.
        stats: the renderer's :class:`~.camera_render.RenderStats` for the same scene.
        hw: the image's (height, width).
    """
    labels, dontcare = [], []
    _, centre = camera_intrinsics(calib[cam])
    for k, obj in enumerate(scene.objects):
        if obj.label is None or stats.full_pixels[k] == 0:
            continue
        if (obj.corners()[:, 2] - centre[2] <= 0.1).any():
            continue  # not entirely in front of the camera: KITTI does not label it
        rect = projected_rect(obj, calib, cam)
        bbox = _clip_to_image(rect, hw)
        if obj.label == 'DontCare':
            if stats.visible_pixels[k] >= MIN_VISIBLE_PIXELS:
                dontcare.append(dict(type='DontCare', bbox=bbox))
            continue
        x, _, z = obj.bottom_center
        length, height, width = obj.lhw
        labels.append(dict(
            type=obj.label, truncated=_truncation(rect, hw),
            occluded=occlusion_level(stats.visible_pixels[k], stats.full_pixels[k]),
            alpha=wrap_angle(obj.rotation_y - np.arctan2(x, z)), bbox=bbox,
            hwl=np.array([height, width, length]), location=obj.bottom_center.copy(),
            rotation_y=obj.rotation_y))
    return labels + dontcare
