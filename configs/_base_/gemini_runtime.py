# mmdet3d's default runtime with kept checkpoints (TensorBoard: see the model configs).
_base_ = ['mmdet3d::_base_/default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True))
# stop at the first NaN / inf loss term, before the optimizer step (weights stay finite)
custom_hooks = [dict(type='NonFiniteLossGuardHook')]
