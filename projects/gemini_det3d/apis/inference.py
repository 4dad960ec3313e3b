"""Inference on one KITTI frame given by its files (used by tools/infer.py)."""
from typing import List

import numpy as np
import torch

from ..data import kitti_io


def lidar_boxes_to_kitti_objects(boxes, scores, labels, class_names, calib,
                                 image_hw) -> List[dict]:
    """LiDAR-frame boxes -> KITTI label objects (camera frame, 2D box from the corners).

    Args:
        boxes (LiDARInstance3DBoxes): M boxes.
        scores (Tensor): [M]; labels (Tensor): [M] indices into ``class_names``.
        calib (dict): a frame's calibration as ``kitti_io.read_calib`` returns it.
        image_hw (tuple): (height, width) of image_2, to clip the 2D boxes.

    Boxes whose centre is behind the camera or whose projection misses the image are
    dropped (as mmdet3d's KittiMetric does).
    """
    from mmdet3d.structures import Box3DMode, points_cam2img
    if len(boxes) == 0:
        return []
    lidar2cam = torch.as_tensor(kitti_io.lidar2cam(calib), dtype=torch.float32)
    cam_boxes = boxes.convert_to(Box3DMode.CAM, lidar2cam)
    p2 = torch.eye(4)
    p2[:3] = torch.as_tensor(calib['P2'], dtype=torch.float32)
    corners = points_cam2img(cam_boxes.corners.reshape(-1, 3), p2).reshape(-1, 8, 2)
    h, w = image_hw
    lo = corners.min(dim=1).values.clamp(min=0)
    hi = torch.minimum(corners.max(dim=1).values, torch.tensor([w - 1.0, h - 1.0]))
    objects = []
    for i in range(len(cam_boxes)):
        x, y, z, l, hgt, wid, ry = cam_boxes.tensor[i, :7].tolist()
        if z <= 0 or lo[i, 0] >= hi[i, 0] or lo[i, 1] >= hi[i, 1]:
            continue
        objects.append(dict(
            type=class_names[int(labels[i])], truncated=0.0, occluded=0,
            alpha=float(ry - np.arctan2(x, z)),
            bbox=[*lo[i].tolist(), *hi[i].tolist()], hwl=[hgt, wid, l],
            location=[x, y, z], rotation_y=ry, score=float(scores[i])))
    return objects


def detect_kitti_frame(config, checkpoint, velodyne, calib_path, image, device='cpu',
                       score_thr=0.0) -> List[dict]:
    """Run the config's model on one frame; returns KITTI label objects (with ``score``).

    Bad files raise ``KittiFormatError`` (one line naming the file) before any model work.
    """
    from mmdet3d.apis import init_model
    from mmdet3d.structures import LiDARInstance3DBoxes, Box3DMode
    from mmengine.dataset import Compose, pseudo_collate

    kitti_io.read_velodyne(velodyne)  # validates: size, NaN
    calib = kitti_io.read_calib(calib_path)
    image_hw = kitti_io.check_image(image)
    model = init_model(config, checkpoint, device=device)
    cfg = model.cfg
    dataset_cfg = cfg.test_dataloader.dataset
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    lidar2cam = kitti_io.lidar2cam(calib)
    cam2img = np.eye(4)
    cam2img[:3] = calib['P2']
    results = dict(
        lidar_points=dict(lidar_path=str(velodyne), num_pts_feats=4),
        img_path=str(image), lidar2cam=lidar2cam, cam2img=cam2img,
        lidar2img=kitti_io.lidar2img(calib), box_type_3d=LiDARInstance3DBoxes,
        box_mode_3d=Box3DMode.LIDAR, sample_idx=0)
    data = Compose(dataset_cfg.pipeline)(results)
    with torch.no_grad():
        pred = model.test_step(pseudo_collate([data]))[0].pred_instances_3d
    keep = pred.scores_3d >= score_thr
    class_names = cfg.get('class_names') or dataset_cfg.metainfo['classes']
    return lidar_boxes_to_kitti_objects(pred.bboxes_3d[keep], pred.scores_3d[keep],
                                        pred.labels_3d[keep], class_names, calib, image_hw)
