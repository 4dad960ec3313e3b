# The tiny GeminiFusion config with half of the training frames' LiDAR images emptied
# (LiDARImageDropout), so that the image branch has to read the camera picture.
# Measured (seed 0, demo budget, docs/experiments.md): the image features at the points then come
# from the picture (benchmarks/image_point_features.py: Pedestrian point recall 0.48 as is, 0.01
# with swapped pictures) but the 3D head still does not use them (camera-swap drop -0.2 AP
# summed) and the AP was lower (Car / Ped / Cyc 3D 30.0 / 13.7 / 8.4 against 33.6 / 26.6 / 3.3),
# so the default tiny config does not use it. The train pipeline is the base's with one step
# added (tests/test_lidar_image_dropout.py checks that).
_base_ = ['./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py']

img_scale = (624, 188)
point_cloud_range = [0, -25.6, -3, 51.2, 25.6, 1]
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    dict(type='LiDARToDepthImage', channels=['depth', 'height', 'reflectance', 'mask']),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.9, 1.1), keep_ratio=True),
    dict(type='RandomFlip3D', flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.3, 0.3], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.2, 0.2, 0.2]),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='PointShuffle'),
    dict(type='StackDepthImage', bgr_to_rgb=True, mean={{_base_.img_mean}}, std={{_base_.img_std}}),
    dict(type='LiDARImageDropout', prob=0.5),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'],
         meta_keys={{_base_.meta_keys}}),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
