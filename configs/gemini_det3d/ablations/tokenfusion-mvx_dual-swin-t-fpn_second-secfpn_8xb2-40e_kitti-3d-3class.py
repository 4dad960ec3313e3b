# Ablation: TokenFusion (score < 0.02 -> replaced by the other stream's projected token).
_base_ = ['../geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(img_backbone=dict(fusion_cfg=dict(_delete_=True, type='TokenFusion', threshold=0.02)))
