# Tiny ablation: LiDAR only, no image branch (same as ./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py otherwise); the voxel encoder
# makes the 64 channels that the fused model's PointFusion makes, and the head reads SECOND's
# 128 channels without the camera evidence. (The shared train pipeline's LiDARImageDropout
# empties an image this model does not read.)
_base_ = ['./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py']
model = dict(
    img_backbone=None,
    img_neck=None,
    pts_voxel_encoder=dict(feat_channels=[32, 64], fusion_layer=None),
    img_point_loss=None,
    bev_camera_evidence=None,
    pts_bbox_head=dict(in_channels=128, feat_channels=128))
