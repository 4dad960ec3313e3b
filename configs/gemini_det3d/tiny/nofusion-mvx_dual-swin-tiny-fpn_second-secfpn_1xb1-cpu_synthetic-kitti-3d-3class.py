# Tiny ablation: the two streams stay apart inside the backbone (same as ./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py otherwise).
_base_ = ['./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py']
model = dict(img_backbone=dict(fusion_cfg=dict(_delete_=True, type='NoFusion')))
