# Ablation: per-pixel concat + linear.
_base_ = ['../geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(img_backbone=dict(fusion_cfg=dict(_delete_=True, type='ConcatFusion')))
