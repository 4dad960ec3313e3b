# The main model: GeminiFusion inside a two-stream Swin-T (after every block), KITTI 3-class,
# KITTI resolution (1280 x 384 at test time). GPU training: 8 GPUs x 2 frames, 40 epochs,
# AdamW + cosine, weight decay 0.01, gradient clip 35 and the image resize range of mmdet3d's
# MVX-Net KITTI config (every difference from it: docs/main-config-vs-mvxnet.md).
#   tools/dist_train.sh configs/gemini_det3d/<this file> 8
# Both Swin streams start from ImageNet Swin-T (model.img_backbone.init_cfg, downloaded once).
# Offline, a local copy (single-stream Swin, mmdet or official key names):
#   --cfg-options model.img_backbone.init_cfg.checkpoint=checkpoints/swin_tiny_patch4_window7_224.pth
# The point branch from an mmdet3d MVX-Net or SECOND KITTI checkpoint (its pts_* tensors that fit):
#   --cfg-options model.pts_pretrained=checkpoints/<mvxnet or second kitti>.pth
_base_ = [
    '../_base_/models/gemini-mvx_dual-swin-t_fpn_second-secfpn_kitti.py',
    '../_base_/datasets/kitti-3d-3class-multimodal.py',
    'mmdet3d::_base_/schedules/cosine.py',
    '../_base_/gemini_runtime.py',
]
# The pretrained Swin (stages, RGB patch embedding, output norms) learns at 0.1 x the LR; the
# modules that start from scratch (the fusion modules) or from an adapted kernel (the LiDAR
# stream's patch embedding) at the full LR. mmengine applies the longest custom key that is a
# substring of a parameter's name (one only), so the position tables name their LR too, and
# the Swin's norms, matched by the longer 'img_backbone', keep their weight decay.
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'img_backbone': dict(lr_mult=0.1),
            'img_backbone.fusions': dict(lr_mult=1.0),
            'img_backbone.lidar.patch_embed': dict(lr_mult=1.0),
            'absolute_pos_embed': dict(lr_mult=0.1, decay_mult=0.),
            'relative_position_bias_table': dict(lr_mult=0.1, decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
# logs go to text, JSON and TensorBoard (tensorboard --logdir work_dirs/<config>)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
