"""The multi-modal KITTI pipeline of configs/_base_/datasets/kitti-3d-3class-multimodal.py:
create_data output -> mmdet3d's KittiDataset -> stacked image batch, and the camera-LiDAR
alignment under image and 3D augmentation (RGB, LiDAR channels and PointFusion agree)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.synthetic_set import NUM_TRAIN, NUM_VAL


REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / '_base_' / 'datasets' / 'kitti-3d-3class-multimodal.py'


@pytest.fixture(scope='module')
def cfg():
    import gemini_det3d  # noqa: F401  (what the config's custom_imports does)
    from mmdet3d.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules(init_default_scope=False)
    return Config.fromfile(str(CONFIG))


def build_dataset(dataset_cfg, root):
    from mmdet3d.registry import DATASETS
    from mmengine.registry import DefaultScope
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg.data_root = str(root) + '/'
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return DATASETS.build(dataset_cfg)


def compose(transforms):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return Compose(transforms)


def preprocessor(cfg):
    from mmdet3d.registry import MODELS
    # Normalisation already happened in StackDepthImage (see the config): pad only.
    return MODELS.build(dict(type='Det3DDataPreprocessor', mean=None, std=None,
                             bgr_to_rgb=False, pad_size_divisor=32))


def test_config_keeps_camera_lidar_consistency(cfg):
    types = [t['type'] for t in cfg.train_pipeline]
    assert 'ObjectSample' not in types  # GT sampling off for the fused model (see config)
    # The raw grid first, the stacking after every image-space augmentation.
    assert types.index('LiDARToDepthImage') < types.index('RandomResize')
    assert types.index('StackDepthImage') > types.index('RandomFlip3D')
    assert types[-1] == 'Pack3DDetInputs'
    for key in ('lidar2img', 'img_shape', 'scale_factor', 'flip', 'img_crop_offset',
                'pcd_rotation', 'pcd_scale_factor', 'pcd_trans', 'pcd_horizontal_flip',
                'pcd_vertical_flip', 'transformation_3d_flow'):
        assert key in cfg.meta_keys
    assert len(cfg.img_mean) == len(cfg.img_std) == 3 + len(cfg.depth_img_channels)


def test_train_batch_has_stacked_image(cfg, converted_synthetic_kitti):
    from mmengine.dataset import pseudo_collate
    np.random.seed(0)
    dataset = build_dataset(cfg.train_dataloader.dataset.dataset, converted_synthetic_kitti)
    assert len(dataset) == NUM_TRAIN
    samples = [dataset[i] for i in range(2)]
    channels = 3 + len(cfg.depth_img_channels)
    for sample in samples:
        meta = sample['data_samples'].metainfo
        img = sample['inputs']['img']
        assert img.dtype == torch.float32 and img.shape[0] == channels
        assert tuple(img.shape[1:]) == tuple(meta['img_shape'][:2])
        for key in ('lidar2img', 'scale_factor', 'flip', 'pcd_rotation', 'pcd_scale_factor',
                    'pcd_trans', 'pcd_horizontal_flip', 'transformation_3d_flow'):
            assert key in meta, key
        assert tuple(meta['depth_img_channels']) == tuple(cfg.depth_img_channels)
        assert len(sample['data_samples'].gt_instances_3d.bboxes_3d) > 0
    batch = preprocessor(cfg)(pseudo_collate(samples), training=True)
    imgs = batch['inputs']['imgs']
    assert imgs.shape[:2] == (2, channels)
    assert imgs.shape[2] % 32 == 0 and imgs.shape[3] % 32 == 0
    assert batch['inputs']['points'][0].shape[1] == 4
    mean = torch.tensor(cfg.img_mean).view(-1, 1, 1)
    std = torch.tensor(cfg.img_std).view(-1, 1, 1)
    mask_channel = 3 + list(cfg.depth_img_channels).index('mask')
    depth_channel = 3 + list(cfg.depth_img_channels).index('depth')
    for i, sample in enumerate(samples):
        h, w = sample['inputs']['img'].shape[1:]
        torch.testing.assert_close(imgs[i, :, :h, :w], sample['inputs']['img'])
        assert not imgs[i, :, h:, :].any() and not imgs[i, :, :, w:].any()  # zero padding
        raw = sample['inputs']['img'] * std + mean  # undo StackDepthImage's normalisation
        assert 0 <= raw[:3].min() and raw[:3].max() <= 255 and raw[:3].std() > 1
        mask = raw[mask_channel]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert mask.sum() > 500
        depth = raw[depth_channel]
        assert (depth[mask == 1] > 0).all() and (depth[mask == 0] == 0).all()
        # "No point" is exactly 0 after normalisation, like the padding.
        assert (sample['inputs']['img'][3:, mask == 0] == 0).all()


def test_val_batch_has_stacked_image_at_test_scale(cfg, converted_synthetic_kitti):
    import mmcv
    from mmengine.dataset import pseudo_collate
    dataset = build_dataset(cfg.val_dataloader.dataset, converted_synthetic_kitti)
    assert len(dataset) == NUM_VAL
    sample = dataset[0]
    info = dataset.get_data_info(0)
    raw_hw = (info['images']['CAM2']['height'], info['images']['CAM2']['width'])
    w, h = mmcv.rescale_size(raw_hw[::-1], cfg.img_scale)
    assert tuple(sample['inputs']['img'].shape) == (3 + len(cfg.depth_img_channels), h, w)
    batch = preprocessor(cfg)(pseudo_collate([sample]), training=False)
    assert batch['inputs']['imgs'].shape[1] == 3 + len(cfg.depth_img_channels)


def coordinate_maps(height, width):
    """[1, 2, H, W]: each pixel holds its own centre (x + 0.5, y + 0.5)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5,
                            indexing='ij')
    return torch.stack([xs, ys])[None].float()


def test_pointfusion_lands_augmented_points_on_their_raw_pixels(cfg, converted_synthetic_kitti):
    """After resize + crop + flip of the image and rotation / scaling / translation / flip of
    the points, PointFusion's sampling (mmdet3d's point_sample, undoing the recorded 3D
    augmentation) finds each point at its raw pixel moved by the image augmentation, and
    the stacked LiDAR channels hold that point there."""
    from mmdet3d.models.layers.fusion_layers import PointFusion
    np.random.seed(1)
    dataset = build_dataset(cfg.train_dataloader.dataset.dataset, converted_synthetic_kitti)
    info = dataset.get_data_info(1)
    load_points = dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4)
    raw_points = compose([load_points])(copy.deepcopy(info))['points'].tensor.numpy()
    pipeline = compose([
        load_points,
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        dict(type='LiDARToDepthImage', channels=cfg.depth_img_channels),
        dict(type='Resize', scale=(1000, 310), keep_ratio=False),
        dict(type='RandomCrop3D', crop_size=(280, 900)),
        dict(type='RandomFlip3D', flip_ratio_bev_horizontal=1.0),
        dict(type='GlobalRotScaleTrans', rot_range=[-0.6, 0.6], scale_ratio_range=[0.9, 1.1],
             translation_std=[0.5, 0.5, 0.2]),
        dict(type='StackDepthImage'),
        dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'],
             meta_keys=cfg.meta_keys),
    ])
    packed = pipeline(copy.deepcopy(info))
    meta = dict(packed['data_samples'].metainfo)
    img = packed['inputs']['img']
    height, width = img.shape[1:]
    meta['input_shape'] = (height, width)  # set by the detector before fusion
    assert meta['flip'] and meta['pcd_horizontal_flip']
    assert meta['transformation_3d_flow'] == ['HF', 'R', 'S', 'T']
    assert abs(float(meta['pcd_rotation_angle'])) > 0 and any(meta['img_crop_offset'])
    points = packed['inputs']['points']
    assert points.shape == raw_points.shape
    assert not np.allclose(points.numpy(), raw_points)  # the 3D augmentation moved them

    fusion = PointFusion(img_channels=2, pts_channels=4, mid_channels=8, out_channels=8,
                         img_levels=0, aligned=True, align_corners=False,
                         padding_mode='border')
    sampled = fusion.sample_single(coordinate_maps(height, width), points[:, :3], meta).numpy()

    # Where each raw point must be: raw projection, then resize -> crop -> flip.
    lidar2img = np.asarray(info['lidar2img'], dtype=np.float64)
    cam = raw_points[:, :3].astype(np.float64) @ lidar2img[:3, :3].T + lidar2img[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3]
    expected = uv * np.asarray(meta['scale_factor'][:2]) - np.asarray(meta['img_crop_offset'])
    expected[:, 0] = meta['img_shape'][1] - expected[:, 0]
    inside = ((cam[:, 2] > 0.1) & (expected[:, 0] > 0.5) & (expected[:, 0] < width - 0.5)
              & (expected[:, 1] > 0.5) & (expected[:, 1] < height - 0.5))
    assert inside.sum() > 1000
    np.testing.assert_allclose(sampled[inside], expected[inside], atol=2e-2)
    # Not undoing the 3D augmentation would put the points elsewhere.
    moved = points[:, :3].numpy().astype(np.float64) @ lidar2img[:3, :3].T + lidar2img[:3, 3]
    moved_uv = moved[:, :2] / np.maximum(moved[:, 2:3], 1e-3)
    assert np.median(np.abs(moved_uv[inside] * meta['scale_factor'][0] - expected[inside])) > 5

    # The stacked LiDAR channels hold each point at PointFusion's pixel, at most as deep.
    channels = list(cfg.depth_img_channels)
    depth_img = img[3:].numpy()
    cols = np.floor(expected[inside, 0]).astype(int)
    rows = np.floor(expected[inside, 1]).astype(int)
    assert (depth_img[channels.index('mask'), rows, cols] == 1).all()
    point_depth = cam[inside, 2].astype(np.float32)
    assert (depth_img[channels.index('depth'), rows, cols] <= point_depth).all()
    owned = depth_img[channels.index('depth'), rows, cols] == point_depth
    assert owned.mean() > 0.5  # most points are the nearest of their pixel


def test_rgb_and_lidar_channels_move_together(cfg):
    """Bright squares drawn where sparse points project: after mmcv's resize, mmdet3d's crop
    and flip of the RGB, every LiDAR pixel still sits on a bright square."""
    from mmdet3d.structures import LiDARPoints
    rng = np.random.default_rng(5)
    hw = (375, 1242)
    p2 = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.003],
                   [0, 0, 0, 1]])
    velo_to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1.]])
    lidar2img = p2 @ velo_to_cam
    # Dot centres on a coarse grid (well apart), each with one point at the centre pixel.
    cols = np.arange(40, hw[1] - 40, 60)
    rows = np.arange(40, hw[0] - 40, 60)
    centres = np.array([(r, c) for r in rows for c in cols])
    depth = rng.uniform(5, 60, len(centres))
    pixel_h = np.stack([(centres[:, 1] + 0.5) * depth, (centres[:, 0] + 0.5) * depth, depth,
                        np.ones_like(depth)])
    xyz = (np.linalg.inv(lidar2img) @ pixel_h)[:3].T
    points = np.hstack([xyz, rng.uniform(0, 1, (len(xyz), 1))]).astype(np.float32)
    img = np.zeros(hw + (3, ), dtype=np.uint8)
    for r, c in centres:
        img[r - 5:r + 6, c - 5:c + 6] = 255
    results = dict(points=LiDARPoints(points, points_dim=4), img=img, img_shape=hw,
                   ori_shape=hw, lidar2img=lidar2img, cam2img=p2.copy())
    np.random.seed(2)
    pipeline = compose([
        dict(type='LiDARToDepthImage', channels=cfg.depth_img_channels),
        dict(type='Resize', scale=(745, 225), keep_ratio=False),
        dict(type='RandomCrop3D', crop_size=(200, 640)),
        dict(type='RandomFlip3D', flip_ratio_bev_horizontal=1.0),
        dict(type='StackDepthImage'),
    ])
    out = pipeline(results)
    assert out['flip'] and any(out['img_crop_offset'])
    mask = out['img'][..., 3 + list(cfg.depth_img_channels).index('mask')]
    brightness = out['img'][..., :3].min(axis=2)
    assert mask.sum() >= 30
    assert (brightness[mask == 1] > 200).all()
