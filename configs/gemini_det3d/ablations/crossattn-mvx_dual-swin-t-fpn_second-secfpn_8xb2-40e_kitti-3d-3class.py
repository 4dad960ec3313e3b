# Ablation: full cross-attention (every token attends to every token of the other stream).
# Quadratic in tokens: at 1280 x 384 stage 1 has 96 x 320 = 30720 tokens, an N x N map of
# 3.8 GB per head in fp32, so it is fused once per stage, not after every block; even so
# stage 1 needs a large GPU (see benchmarks/fusion_complexity.py).
_base_ = ['../geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(img_backbone=dict(fusion_position='stage',
                               fusion_cfg=dict(_delete_=True, type='CrossAttentionFusion', num_heads=8)))
