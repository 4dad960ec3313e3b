# Ablation: LiDAR only (no image branch): the voxel encoder makes the 128 channels the
# fused model's PointFusion makes, so everything after it is unchanged.
_base_ = ['../geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(
    img_backbone=None,
    img_neck=None,
    pts_voxel_encoder=dict(feat_channels=[64, 128], fusion_layer=None))
