"""Inference on one KITTI frame given by its files (used by tools/infer.py)."""
from typing import List

import numpy as np
import torch

from ..data import kitti_io


def lidar_boxes_to_kitti_objects(boxes, scores, labels, class_names, calib,
                                 image_hw) -> List[dict]:
    """LiDAR-frame boxes -> KITTI label objects, as mmdet3d's ``KittiMetric`` makes them.

    Its ``convert_valid_bboxes`` keeps the boxes whose projected corners overlap the image and
    whose LiDAR bottom centre lies in its default ``pcd_limit_range``; the fields are those of
    its ``bbox2result_kitti`` (camera frame, yaw limited to [-pi, pi) before the conversion,
    2D box clipped to [0, W] x [0, H], alpha from the LiDAR-frame azimuth).

    Args:
        boxes (LiDARInstance3DBoxes): M boxes (not modified).
        scores (Tensor): [M]; labels (Tensor): [M] indices into ``class_names``.
        calib (dict): a frame's calibration as ``kitti_io.read_calib`` returns it.
        image_hw (tuple): (height, width) of image_2.
    """
    from mmdet3d.evaluation.metrics import KittiMetric
    height, width = image_hw
    cam2img = np.eye(4)
    cam2img[:3] = calib['P2']
    info = dict(sample_idx=0, images=dict(CAM2=dict(
        lidar2cam=kitti_io.lidar2cam(calib), cam2img=cam2img, height=height, width=width)))
    valid = KittiMetric(ann_file='').convert_valid_bboxes(  # it limits the yaw in place
        dict(bboxes_3d=boxes.to('cpu').clone(), scores_3d=scores.cpu(), labels_3d=labels.cpu()),
        info)
    # bbox2result_kitti's per-box fields; not called itself: it prints a progress bar on
    # stdout, where tools/infer.py writes the labels
    return [dict(type=class_names[int(label)], truncated=0.0, occluded=0,
                 alpha=float(-np.arctan2(-lidar[1], lidar[0]) + cam[6]),
                 bbox=np.clip(bbox, 0, [width, height, width, height]).tolist(),
                 hwl=cam[[4, 5, 3]].tolist(), location=cam[:3].tolist(),
                 rotation_y=float(cam[6]), score=float(score))
            for bbox, cam, lidar, score, label in zip(
                valid['bbox'], valid['box3d_camera'], valid['box3d_lidar'], valid['scores'],
                valid['label_preds'])]


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
