# Ablation: the GeminiFusion authors' point-level variant of MVX-Net: an RGB-only image
# stream, and GeminiFusion between each point's feature and its projected image feature
# inside the voxel encoder (instead of PointFusion's sum).
_base_ = ['./rgbonly-mvx_swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(pts_voxel_encoder=dict(fusion_layer=dict(type='PointGeminiFusion', num_heads=8)))
