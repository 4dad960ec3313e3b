# GeminiFusion MVX model for KITTI 3-class (the design card's data flow):
#   stacked RGB + LiDAR grid -> DualSwinTransformer (GeminiFusion after every Swin block)
#   -> FPN -> PointFusion samples the fused features at each point's pixel inside DynamicVFE
#   -> SparseEncoder (spconv) -> SECOND -> SECONDFPN -> Anchor3DHead.
# The pts part is mmdet3d's MVX-Net KITTI config (mvxnet_fpn_dv_second_secfpn): dynamic
# voxelisation, every point kept (on CPU, gemini_det3d.compat's pure-torch dynamic scatter
# stands in for mmcv's CUDA-only one). Remaining differences: docs/main-config-vs-mvxnet.md.
# (custom_imports, point_cloud_range and the stacked image's normalisation come from
# configs/_base_/datasets/kitti-3d-3class-multimodal.py, which explains their values)
voxel_size = [0.05, 0.05, 0.1]
_point_cloud_range = [0, -40, -3, 70.4, 40, 1]

model = dict(
    # mmdet3d's MVX detector (hard or dynamic voxels, as the preprocessor makes them) that also
    # takes frames without points (empty prediction, no loss). The point branch can start from
    # an mmdet3d MVX-Net / SECOND KITTI checkpoint: pts_pretrained=PATH loads its pts_* tensors
    # that fit and logs one line of what was loaded and what was not.
    type='GeminiMVXFasterRCNN',
    pts_pretrained=None,
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        voxel=True,
        voxel_type='dynamic',
        voxel_layer=dict(
            max_num_points=-1,
            point_cloud_range=_point_cloud_range,
            voxel_size=voxel_size,
            max_voxels=(-1, -1)),
        # the pipeline's StackDepthImage normalises all 3 + 4 channels and orders them RGB;
        # here only padding (with 0 = "no point")
        mean=None,
        std=None,
        bgr_to_rgb=False,
        pad_size_divisor=32),
    img_backbone=dict(
        type='DualSwinTransformer',
        lidar_channels=4,
        fusion_cfg=dict(type='GeminiFusion', num_heads=8),
        fusion_position='block',
        share_weights=True,
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        # ImageNet Swin-T, the checkpoint mmdet's Swin configs start from, loaded into both
        # streams (the LiDAR patch embedding gets the RGB kernel averaged over colour).
        # Offline: --cfg-options model.img_backbone.init_cfg.checkpoint=<local .pth>
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
            'swin_tiny_patch4_window7_224.pth')),
    img_neck=dict(
        type='mmdet.FPN',
        in_channels=[96, 192, 384, 768],
        out_channels=256,
        # FPN's default: no norm (as mmdet's Swin + FPN configs; MVX-Net's ResNet FPN has a
        # frozen-affine BN). With 2 images per batch whose padding differs, that BN's batch
        # statistics in training and its running statistics at test time disagreed: on the
        # tiny config at lr 0.006 the deepest level's test-time mean sat 16-41 running
        # standard deviations off, the error grew through PointFusion into the sparse encoder
        # and Car 3D AP40 fell to 0.6 (35 with the same weights in train mode).
        # (No explicit norm_cfg=None: mmdet3d's init_model cannot read a None norm_cfg.)
        num_outs=5),
    pts_voxel_encoder=dict(
        type='DynamicVFE',
        in_channels=4,
        feat_channels=[64, 64],
        with_distance=False,
        voxel_size=voxel_size,
        with_cluster_center=True,
        with_voxel_center=True,
        point_cloud_range=_point_cloud_range,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01),
        fusion_layer=dict(
            type='PointFusion',
            img_channels=256,
            pts_channels=64,
            mid_channels=128,
            out_channels=128,
            img_levels=[0, 1, 2, 3, 4],
            align_corners=False,
            activate_out=True,
            fuse_out=False)),
    pts_middle_encoder=dict(
        type='SparseEncoder',
        in_channels=128,
        sparse_shape=[41, 1600, 1408],
        order=('conv', 'norm', 'act')),
    pts_backbone=dict(
        type='SECOND',
        in_channels=256,
        layer_nums=[5, 5],
        layer_strides=[1, 2],
        out_channels=[128, 256]),
    pts_neck=dict(
        type='SECONDFPN',
        in_channels=[128, 256],
        upsample_strides=[1, 2],
        out_channels=[256, 256]),
    pts_bbox_head=dict(
        type='Anchor3DHead',
        num_classes=3,
        in_channels=512,
        feat_channels=512,
        use_direction_classifier=True,
        anchor_generator=dict(
            type='Anchor3DRangeGenerator',
            ranges=[
                [0, -40.0, -0.6, 70.4, 40.0, -0.6],
                [0, -40.0, -0.6, 70.4, 40.0, -0.6],
                [0, -40.0, -1.78, 70.4, 40.0, -1.78],
            ],
            sizes=[[0.8, 0.6, 1.73], [1.76, 0.6, 1.73], [3.9, 1.6, 1.56]],
            rotations=[0, 1.57],
            reshape_out=False),
        assigner_per_size=True,
        diff_rad_by_sin=True,
        assign_per_class=True,
        bbox_coder=dict(type='DeltaXYZWLHRBBoxCoder'),
        loss_cls=dict(
            type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, loss_weight=2.0),
        loss_dir=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.2)),
    train_cfg=dict(
        pts=dict(
            assigner=[
                dict(  # Pedestrian
                    type='Max3DIoUAssigner',
                    iou_calculator=dict(type='BboxOverlapsNearest3D'),
                    pos_iou_thr=0.35, neg_iou_thr=0.2, min_pos_iou=0.2, ignore_iof_thr=-1),
                dict(  # Cyclist
                    type='Max3DIoUAssigner',
                    iou_calculator=dict(type='BboxOverlapsNearest3D'),
                    pos_iou_thr=0.35, neg_iou_thr=0.2, min_pos_iou=0.2, ignore_iof_thr=-1),
                dict(  # Car
                    type='Max3DIoUAssigner',
                    iou_calculator=dict(type='BboxOverlapsNearest3D'),
                    pos_iou_thr=0.6, neg_iou_thr=0.45, min_pos_iou=0.45, ignore_iof_thr=-1),
            ],
            allowed_border=0,
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        pts=dict(
            use_rotate_nms=True,
            nms_across_levels=False,
            nms_thr=0.01,
            score_thr=0.1,
            min_bbox_size=0,
            nms_pre=100,
            max_num=50)))
