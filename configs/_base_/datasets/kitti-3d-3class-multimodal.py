# KITTI 3-class, LiDAR + camera 2, with the depth-aligned LiDAR image stacked onto the RGB.
#
# Modelled on mmdet3d's configs/_base_/datasets/kitti-3d-3class.py (classes, ranges, loaders,
# KittiMetric) and its MVX-Net KITTI config (image loading, resize, synchronised flip).
# Prepare the data root with
#     python tools/create_data.py kitti --root-path data/kitti --out-dir data/kitti --extra-tag kitti
#
# What a sample becomes:
#   img: H x W x (3 + C) float32 = RGB (from BGR) followed by the LiDAR channels
#        `depth_img_channels`, normalised per channel (img_mean / img_std below), so
#        mmdet3d's Pack3DDetInputs and Det3DDataPreprocessor carry them unchanged; the
#        backbone splits the 3 + C channels into its two streams.
#   points: the augmented scan (for the voxel branch and PointFusion).
#
# The LiDAR image is made from the raw scan and the raw lidar2img by LiDARToDepthImage,
# right after loading. The image augmentations (mmcv's RandomResize / Resize, then
# RandomFlip3D's synchronised image flip; a crop, e.g. RandomCrop3D, would go between the two)
# move the RGB and record scale_factor / img_crop_offset / flip; StackDepthImage then
# re-projects the recorded points at that final geometry (no interpolation, so depths never
# mix, and no point is lost when the image shrinks) with PointFusion's own recipe
# (resize -> crop -> flip), so RGB, LiDAR channels and PointFusion's sampling agree.
# The 3D augmentations (RandomFlip3D's BEV flip, GlobalRotScaleTrans) move the points and
# boxes and record pcd_horizontal_flip / pcd_rotation / pcd_scale_factor / pcd_trans /
# transformation_3d_flow, which Pack3DDetInputs keeps (meta_keys below) so that PointFusion
# can undo them before projecting points with the raw lidar2img.
#
# GT sampling (ObjectSample) is OFF for the fused model, as in mmdet3d's MVX-Net KITTI config:
# pasting GT-database points into a scan without pasting the object's pixels into the image
# breaks camera-LiDAR consistency (the RGB shows road where the LiDAR channels and PointFusion
# see a car), and mmdet3d 1.4 ships no multi-modal (point + image patch) sampler.

# LiDARToDepthImage and StackDepthImage are the project's (registered on import).
custom_imports = dict(imports=['gemini_det3d'], allow_failed_imports=False)

# mmdet3d's KittiDataset, with a one-line error for a missing or 0.x-format info file
dataset_type = 'StrictKittiDataset'
data_root = 'data/kitti/'
class_names = ['Pedestrian', 'Cyclist', 'Car']
metainfo = dict(classes=class_names)
point_cloud_range = [0, -40, -3, 70.4, 40, 1]
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None

# The LiDAR image (see gemini_det3d/datasets/transforms/depth_grid.py).
depth_img_channels = ['depth', 'height', 'reflectance', 'mask']
depth_img_dilation = 1  # odd k > 1: fill empty pixels from the nearest point in a k x k window
# Image size at test time (mmdet3d's MVX-Net uses the same); training resizes around it.
img_scale = (1280, 384)

# Per-channel normalisation of the stacked image, done by StackDepthImage (mmengine's
# ImgDataPreprocessor accepts only 1 or 3 means), so the model's preprocessor must be
#   data_preprocessor=dict(type='Det3DDataPreprocessor', mean=None, std=None,
#                          bgr_to_rgb=False, pad_size_divisor=32, ...)
# (it then only pads, with 0). RGB: ImageNet statistics (StackDepthImage already gives RGB).
# LiDAR channels: mean 0, so that "no point" and the padding both stay exactly 0; the stds
# bring depth (0-80 m) near unit scale. bgr_to_rgb must stay False in the preprocessor: with
# more than 3 channels it would keep only channels [2, 1, 0].
img_mean = [123.675, 116.28, 103.53, 0.0, 0.0, 0.0, 0.0]
img_std = [58.395, 57.12, 57.375, 20.0, 1.0, 1.0, 1.0]

# Pack3DDetInputs' defaults plus what the fused model needs to map points into the image
# (all the image and 3D augmentation records) and the names of the LiDAR channels.
meta_keys = ('img_path', 'ori_shape', 'img_shape', 'lidar2img', 'depth2img', 'cam2img',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction', 'img_crop_offset',
             'pcd_horizontal_flip', 'pcd_vertical_flip', 'box_mode_3d', 'box_type_3d',
             'img_norm_cfg', 'num_pts_feats', 'pcd_trans', 'sample_idx', 'pcd_scale_factor',
             'pcd_rotation', 'pcd_rotation_angle', 'lidar_path', 'transformation_3d_flow',
             'lidar2cam', 'depth_img_channels')

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    # From the raw scan and raw calibration, before any augmentation.
    dict(type='LiDARToDepthImage', channels=depth_img_channels, dilation=depth_img_dilation),
    # Image space: resize, then (inside RandomFlip3D) flip -- PointFusion's order.
    # MVX-Net's multi-scale training: a random size between 640 x 192 and 2560 x 768
    # (aspect ratio kept), around img_scale
    dict(type='RandomResize', scale=[(640, 192), (2560, 768)], keep_ratio=True),
    # sync_2d (default): the image flip and the BEV flip of points/boxes happen together.
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05], translation_std=[0.2, 0.2, 0.2]),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PointShuffle'),
    # After every image-space augmentation: re-project at the final geometry, stack.
    dict(type='StackDepthImage', bgr_to_rgb=True, mean=img_mean, std=img_std),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'],
         meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LiDARToDepthImage', channels=depth_img_channels, dilation=depth_img_dilation),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='StackDepthImage', bgr_to_rgb=True, mean=img_mean, std=img_std),
    dict(type='Pack3DDetInputs', keys=['points', 'img'], meta_keys=meta_keys),
]
# Loading only, for visualisation of ground truth (keep consistent with test_pipeline).
eval_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4,
         backend_args=backend_args),
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Pack3DDetInputs', keys=['points', 'img']),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    # fresh workers each epoch, seeded from (seed, epoch) by EpochSeedHook: a resumed run
    # replays its augmentations exactly (persistent workers' generators run on across epochs)
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='RepeatDataset',
        times=2,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='kitti_infos_train.pkl',
            data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2'),
            pipeline=train_pipeline,
            modality=input_modality,
            filter_empty_gt=False,
            test_mode=False,
            metainfo=metainfo,
            box_type_3d='LiDAR',
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2'),
        ann_file='kitti_infos_val.pkl',
        pipeline=test_pipeline,
        modality=input_modality,
        test_mode=True,
        metainfo=metainfo,
        box_type_3d='LiDAR',
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='KittiMetric',
    ann_file=data_root + 'kitti_infos_val.pkl',
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
