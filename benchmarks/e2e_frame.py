"""The one frame the end-to-end benchmark feeds every model, through each config's own pipeline.

A synthetic KITTI frame (:func:`gemini_det3d.data.generate_frame`: a 64-beam, 360-degree
scan, ~108k points, and camera 2's 1242 x 375 image of the same scene) is written as KITTI
files (velodyne .bin, image_2 .png) so that each config's ``test_pipeline`` loads it exactly
as it loads a real KITTI frame: file loading, ``LiDARToDepthImage``, ``Resize``,
``PointsRangeFilter``, ``StackDepthImage`` and ``Pack3DDetInputs``. Only the resize target
(``--quick``) and the number of points (``--points``) can be changed.
"""
import os.path as osp
from dataclasses import dataclass

import numpy as np


@dataclass
class FrameFiles:
    """A synthetic frame on disk.

    Attributes:
        velodyne (str): KITTI velodyne .bin, [N, 4] float32 (x, y, z, reflectance).
        image (str): image_2 .png, H x W x 3.
        calib (dict): KITTI calibration matrices (as ``kitti_io.read_calib`` returns them).
        num_points (int): N, the points in the scan.
        image_hw (tuple): (H, W) of the image file.
    """
    velodyne: str
    image: str
    calib: dict
    num_points: int
    image_hw: tuple


def write_frame(out_dir: str, seed: int = 0, num_points: int = 0) -> FrameFiles:
    """Generate training frame 0 of ``seed`` and write its scan and image into ``out_dir``.

    Args:
        num_points (int): keep a random subset of this many points (0: the whole scan).
    """
    from gemini_det3d.data import generate_frame, kitti_io
    frame = generate_frame(seed, 'training', 0)
    points = frame['points']
    if 0 < num_points < len(points):
        keep = np.random.default_rng(seed).choice(len(points), num_points, replace=False)
        points = points[np.sort(keep)]  # keep the scan order: beams, then azimuth
    velodyne = osp.join(out_dir, 'frame.bin')
    image = osp.join(out_dir, 'frame.png')
    kitti_io.write_velodyne(velodyne, points)
    kitti_io.write_image(image, frame['image'])
    return FrameFiles(velodyne=velodyne, image=image, calib=frame['calib'],
                      num_points=len(points), image_hw=tuple(frame['image'].shape[:2]))


def test_pipeline_of(cfg) -> list:
    """The config's test pipeline (the innermost dataset's, under dataset wrappers)."""
    dataset_cfg = cfg.test_dataloader.dataset
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg.pipeline


def make_batch(cfg, frame: FrameFiles, img_scale=None) -> dict:
    """The frame run through ``cfg``'s test pipeline, collated as a batch of 1.

    Args:
        img_scale (tuple, optional): (w, h) for the pipeline's ``Resize``; None: the config's.

    Returns:
        dict: ``inputs`` (``points``: list of one [P, 4] tensor, ``img``: list of one
        [3 + C, H, W] tensor) and ``data_samples``, as ``model.test_step`` takes them.
    """
    from gemini_det3d.data import kitti_io
    from mmdet3d.structures import Box3DMode, LiDARInstance3DBoxes
    from mmengine.dataset import Compose, pseudo_collate
    pipeline = [dict(step) for step in test_pipeline_of(cfg)]
    if img_scale is not None:
        for step in pipeline:
            if step['type'] in ('Resize', 'mmdet.Resize', 'RandomResize'):
                step['scale'] = tuple(img_scale)
    cam2img = np.eye(4)
    cam2img[:3] = frame.calib['P2']
    results = dict(
        lidar_points=dict(lidar_path=frame.velodyne, num_pts_feats=4),
        img_path=frame.image, lidar2cam=kitti_io.lidar2cam(frame.calib), cam2img=cam2img,
        lidar2img=kitti_io.lidar2img(frame.calib), box_type_3d=LiDARInstance3DBoxes,
        box_mode_3d=Box3DMode.LIDAR, sample_idx=0)
    return pseudo_collate([Compose(pipeline)(results)])


def describe_batch(batch: dict) -> dict:
    """What the model is given: points after the pipeline and the image's sizes."""
    sample = batch['data_samples'][0]
    img = batch['inputs'].get('img')
    return dict(points_in_model=int(batch['inputs']['points'][0].shape[0]),
                img_shape=list(sample.metainfo.get('img_shape', ())) or None,
                img_channels=None if img is None else int(img[0].shape[0]))
