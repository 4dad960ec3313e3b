# Tiny ablation: TokenFusion inside the backbone (a token whose score is < 0.02 is replaced by the
# other stream's projected token; same as ./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py otherwise).
_base_ = ['./geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py']
model = dict(img_backbone=dict(fusion_cfg=dict(_delete_=True, type='TokenFusion', threshold=0.02)))
