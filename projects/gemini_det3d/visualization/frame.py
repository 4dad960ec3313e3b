"""One frame to draw: scan, camera image, projection, ground-truth and predicted boxes."""
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .box_geometry import as_box_array


@dataclass
class VisFrame:
    """Everything the pictures of one frame need.

    Attributes:
        name: file name stem of the pictures (KITTI frame id, e.g. ``'000003'``).
        points: [N, 4] float32 scan (x, y, z, reflectance), LiDAR frame.
        image_bgr: [H, W, 3] uint8 camera image, or None (no camera picture).
        lidar2img: [4, 4] LiDAR-to-pixel projection of ``image_bgr``.
        gt_boxes, pred_boxes: [M, 7] LiDAR boxes (x, y, z bottom centre, l, w, h, yaw).
        pred_scores: [K] scores of ``pred_boxes`` (may be empty).
    """
    name: str
    points: np.ndarray
    image_bgr: Optional[np.ndarray] = None
    lidar2img: Optional[np.ndarray] = None
    gt_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    pred_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    pred_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        self.gt_boxes = as_box_array(self.gt_boxes)
        self.pred_boxes = as_box_array(self.pred_boxes)
        self.pred_scores = np.asarray(self.pred_scores, dtype=np.float64).reshape(-1)


def kitti_objects_to_lidar_boxes(objects: List[dict], lidar2cam: np.ndarray):
    """KITTI label objects (camera frame) -> LiDAR boxes, as mmdet3d's ``KittiDataset`` does.

    Args:
        objects: dicts as ``kitti_io.read_label`` returns them (DontCare is skipped).
        lidar2cam (np.ndarray): [4, 4] ``R0_rect @ Tr_velo_to_cam``.

    Returns:
        tuple: boxes [M, 7] (LiDAR frame, bottom centre), scores [M] (1.0 where the file has
        none), class names (list of M str).
    """
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    kept = [o for o in objects if o['type'] != 'DontCare']
    if not kept:
        return np.zeros((0, 7)), np.zeros(0), []
    # mmdet3d's camera boxes: location, dimensions (l, h, w), rotation_y.
    cam = np.array([[*o['location'], o['hwl'][2], o['hwl'][0], o['hwl'][1], o['rotation_y']]
                    for o in kept], dtype=np.float32)
    lidar = CameraInstance3DBoxes(cam).convert_to(Box3DMode.LIDAR, np.linalg.inv(lidar2cam))
    scores = np.array([o.get('score', 1.0) for o in kept], dtype=np.float64)
    return as_box_array(lidar), scores, [o['type'] for o in kept]
