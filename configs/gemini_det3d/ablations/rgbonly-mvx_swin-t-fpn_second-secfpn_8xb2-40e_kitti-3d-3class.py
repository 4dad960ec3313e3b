# Ablation: RGB-only image stream (MVX-Net with a single-stream Swin-T): the LiDAR grid is
# still stacked by the pipeline but the backbone sees channels 0-2 only. The Swin starts from
# the main config's ImageNet weights and takes the same option:
#   --cfg-options model.img_backbone.init_cfg.checkpoint=<local .pth>
_base_ = ['../geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py']
model = dict(img_backbone=dict(
    _delete_=True, type='ChannelSliceBackbone', channels=(0, 1, 2),
    init_cfg={{_base_.model.img_backbone.init_cfg}},
    backbone=dict(type='mmdet.SwinTransformer', embed_dims=96, depths=(2, 2, 6, 2),
                  num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.2,
                  out_indices=(0, 1, 2, 3), init_cfg=None)))
