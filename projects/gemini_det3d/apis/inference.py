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


def init_checked_model(config, checkpoint: str, device: str = 'cpu'):
    """mmdet3d's ``init_model``, but weights of another model are an error, not a warning.

    Args:
        config (str | mmengine.Config): a config file (loaded and checked by
            :func:`gemini_det3d.utils.config.load_config`) or a loaded config.
        checkpoint (str): a checkpoint of this config's model.

    Returns:
        nn.Module: the model in eval mode on ``device``, with ``model.cfg`` and
        ``model.dataset_meta`` set (as ``init_model`` sets them).

    Raises:
        GeminiInputError: a bad config; a checkpoint file that is missing, no checkpoint,
            or holds another model's weights (missing / unexpected / reshaped keys listed).
    """
    from mmdet3d.apis import init_model
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from ..utils.checkpoint_check import check_checkpoint_fits, read_checkpoint
    from ..utils.config import load_config
    config_name = config if isinstance(config, str) else (config.filename or '')
    if isinstance(config, str):
        config = load_config(config)
    saved = read_checkpoint(checkpoint)  # before the (slow) model build
    model = init_model(config, None, device=device)
    check_checkpoint_fits(model, saved, checkpoint, config_name)
    _load_checkpoint_to_model(model, saved, strict=True)
    meta = saved.get('meta') or {}
    classes = meta.get('dataset_meta', {}).get('classes') or model.cfg.get('class_names')
    model.dataset_meta = dict(meta.get('dataset_meta') or dict(classes=classes))
    return model


def detect_kitti_frame(config, checkpoint, velodyne, calib_path, image, device='cpu',
                       score_thr=0.0) -> List[dict]:
    """Run the config's model on one frame; returns KITTI label objects (with ``score``).

    Bad files raise ``KittiFormatError`` (one line naming the file) before any model work;
    a checkpoint of another model raises ``CheckpointMismatchError`` (see
    :func:`init_checked_model`).
    """
    from mmdet3d.structures import LiDARInstance3DBoxes, Box3DMode
    from mmengine.dataset import Compose, pseudo_collate

    kitti_io.read_velodyne(velodyne)  # validates: size, NaN
    calib = kitti_io.read_calib(calib_path)
    image_hw = kitti_io.check_image(image)
    model = init_checked_model(config, checkpoint, device=device)
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
