# mmdet3d's default runtime with kept checkpoints (TensorBoard: see the model configs).
_base_ = ['mmdet3d::_base_/default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    # CheckpointHook that never leaves a half-written checkpoint or `last_checkpoint`
    # (temp file + fsync + rename), and prunes old checkpoints only after the new one is saved
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True))
custom_hooks = [
    # stop at the first NaN / inf loss term, before the optimizer step (weights stay finite)
    dict(type='NonFiniteLossGuardHook'),
    # each epoch's randomness depends on (seed, epoch) only: `--resume` replays an
    # interrupted epoch exactly (with persistent_workers=False or num_workers=0)
    dict(type='EpochSeedHook'),
]
