# The main model: GeminiFusion inside a two-stream Swin-T (after every block), KITTI 3-class,
# KITTI resolution (1280 x 384 at test time). GPU training: 8 GPUs x 2 frames, 40 epochs,
# AdamW + cosine, as mmdet3d's MVX-Net KITTI config.
#   tools/dist_train.sh configs/gemini_det3d/<this file> 8
# Swin ImageNet weights (single-stream, mmdet or official key names) by a local path:
#   --cfg-options model.img_backbone.init_cfg.type=Pretrained \
#                 model.img_backbone.init_cfg.checkpoint=checkpoints/swin_tiny_patch4_window7_224.pth
_base_ = [
    '../_base_/models/gemini-mvx_dual-swin-t_fpn_second-secfpn_kitti.py',
    '../_base_/datasets/kitti-3d-3class-multimodal.py',
    'mmdet3d::_base_/schedules/cosine.py',
    '../_base_/gemini_runtime.py',
]
# the Swin streams: lower LR and no weight decay on norms / position tables, as Swin detectors do
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'img_backbone': dict(lr_mult=0.1),
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
# logs go to text, JSON and TensorBoard (tensorboard --logdir work_dirs/<config>)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
