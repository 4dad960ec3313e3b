"""``tools/dist_train.sh CONFIG 2`` (torchrun, gloo on CPU) trains what one process trains.

Data-parallel training with P processes of batch b is, step for step, one process with
batch b that accumulates the gradients of P batches (``optim_wrapper.accumulative_counts=P``):
each process's BatchNorm normalises over its own b frames and its loss is normalised over
its own frames (Anchor3DHead divides by its local number of positive anchors), and DDP
averages the P gradients. That reference sums the same numbers in the same order, so
the two runs agree to float rounding; one process with batch P*b does not (its BatchNorm
and loss normalisation couple the frames: its first gradient is almost orthogonal to the
average of the per-frame gradients on the tiny model), so it is not the reference here.

Both runs see the same frames per step: mmengine's DefaultSampler gives rank r the
indices ``perm[r::P]`` of one shuffled order that every process draws from the same seed,
so step k of 2 ranks x batch 1 is frames (perm[2k], perm[2k+1]), the two micro-batches of
step k of the reference. Random augmentations are removed: each process draws them from
its own generator, which would give the two runs different inputs.

Tolerance: a 1e-5 relative difference on losses and gradient norms (float32 rounding is
~1e-7 per operation; measured difference: 0), and 1e-3 of what one epoch of training
moves the weights. A control run that sees the same frames in another order (another
sampler seed) must differ by far more, so the tolerance does catch wrong data sharding or
gradients that are not averaged.
"""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from _configs import REPO, load, retarget

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
RANDOM_STEPS = ('RandomFlip3D', 'GlobalRotScaleTrans', 'PointShuffle', 'LiDARImageDropout')
EPOCHS, FRAMES, PROCESSES = 2, 4, 2
LOSS_RTOL = 1e-5
WEIGHT_RTOL = 1e-3
RUN_OPTIONS = [
    f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_begin={EPOCHS + 1}',  # no validation
    'randomness.seed=0', 'randomness.deterministic=True',
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',  # every iteration, unsmoothed
]
# per-process BatchNorm running statistics: with broadcast_buffers=False rank 0 keeps the
# statistics of its own frames; they do not enter training, only evaluation
BN_STATISTICS = ('running_mean', 'running_var', 'num_batches_tracked')


def _innermost(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg


def _deterministic_tiny_config(data_root, path):
    """The tiny GeminiFusion config on ``data_root`` with a small image and fewer voxels,
    batch 1 per process, no random augmentation, and its warm-up (stepped per iteration, i.e. per micro-batch
    under gradient accumulation) dropped: only the per-epoch cosine schedule is kept."""
    cfg = retarget(load(TINY), data_root)
    pipeline = []
    for step in _innermost(cfg.train_dataloader.dataset).pipeline:
        if step['type'] == 'RandomResize':
            step = dict(type='Resize', scale=(156, 47), keep_ratio=True)
        if step['type'] not in RANDOM_STEPS:
            pipeline.append(step)
    _innermost(cfg.train_dataloader.dataset).pipeline = pipeline
    cfg.train_dataloader.batch_size = 1
    cfg.model.data_preprocessor.voxel_layer.max_voxels = (4000, 4000)  # cheaper steps
    cfg.param_scheduler = [s for s in cfg.param_scheduler if s.get('by_epoch', True)]
    assert cfg.param_scheduler, 'the tiny config has no per-epoch LR schedule left'
    cfg.dump(str(path))
    return str(path)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _start(cmd, log_path, **env):
    # one thread per process: the comparison needs the same float reduction order in
    # every process, and the 2-core test machine is shared
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', **env)
    log = open(log_path, 'w')
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log


def _wait(proc_log, log_path):
    proc, log = proc_log
    try:
        rc = proc.wait(timeout=900)
    finally:
        log.close()
    with open(log_path) as f:
        assert rc == 0, f'{log_path} (exit {rc}):\n' + f.read()[-4000:]


def _logged_iterations(work_dir):
    """Rank 0's per-iteration scalars (loss, grad_norm, ...) from mmengine's JSON log."""
    [scalars] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        return [row for row in map(json.loads, f) if 'loss' in row]


def _weights(work_dir, epoch):
    state = torch.load(osp.join(work_dir, f'epoch_{epoch}.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    return {k: v.double() for k, v in state.items()
            if v.is_floating_point() and not k.endswith(BN_STATISTICS)}


def _distance(a, b):
    return sum(((a[k] - b[k]) ** 2).sum() for k in a).sqrt().item()


def _relative(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_process_accumulating_two_batches(
        converted_synthetic_kitti, tmp_path):
    config = _deterministic_tiny_config(converted_synthetic_kitti, tmp_path / 'tiny_deterministic.py')
    train = [sys.executable, 'tools/train.py', config]
    work = {name: str(tmp_path / name) for name in ('dist', 'reference', 'control')}
    reference_options = [*RUN_OPTIONS, f'optim_wrapper.accumulative_counts={PROCESSES}']
    runs = {
        'dist': _start(['bash', 'tools/dist_train.sh', config, str(PROCESSES), '--work-dir',
                        work['dist'], '--cfg-options', *RUN_OPTIONS],
                       tmp_path / 'dist.log', PORT=str(_free_port())),
        'reference': _start([*train, '--work-dir', work['reference'], '--cfg-options',
                             *reference_options], tmp_path / 'reference.log'),
        # the same frames, paired and ordered by another shuffling seed; one epoch
        'control': _start([*train, '--work-dir', work['control'], '--cfg-options',
                           *reference_options, 'train_dataloader.sampler.seed=100',
                           'train_cfg.max_epochs=1'], tmp_path / 'control.log'),
    }
    for name, proc_log in runs.items():
        _wait(proc_log, tmp_path / f'{name}.log')

    dist, reference = _logged_iterations(work['dist']), _logged_iterations(work['reference'])
    steps = EPOCHS * FRAMES // PROCESSES
    assert len(dist) == steps, f'{len(dist)} iterations with 2 processes, expected {steps}'
    assert len(reference) == PROCESSES * steps
    for k, row in enumerate(dist):
        # rank 0 computes the loss of the first micro-batch of the reference's step k ...
        first_micro_batch = reference[PROCESSES * k]
        assert _relative(row['loss'], first_micro_batch['loss']) < LOSS_RTOL, (k, row, first_micro_batch)
        # ... and the averaged gradient is the reference's accumulated one
        step = reference[PROCESSES * k + PROCESSES - 1]
        assert _relative(row['grad_norm'], step['grad_norm']) < LOSS_RTOL, (k, row, step)
        assert row['lr'] == step['lr']

    reference_last, reference_before = (_weights(work['reference'], e) for e in (EPOCHS, EPOCHS - 1))
    one_epoch_of_training = _distance(reference_last, reference_before)
    dist_error = _distance(_weights(work['dist'], EPOCHS), reference_last)
    control_error = _distance(_weights(work['control'], 1), _weights(work['reference'], 1))
    print(f'weights: distance to the reference / one epoch of training: 2 processes after '
          f'{EPOCHS} epochs {dist_error / one_epoch_of_training:.2e}, other frame order after '
          f'1 epoch {control_error / one_epoch_of_training:.2e}')
    assert dist_error < WEIGHT_RTOL * one_epoch_of_training
    assert control_error > 100 * WEIGHT_RTOL * one_epoch_of_training
    control = _logged_iterations(work['control'])
    assert max(_relative(c['loss'], r['loss']) for c, r in zip(control, reference)) > 100 * LOSS_RTOL


# Slurm's srun on one machine: --ntasks copies of the command with the variables that
# mmengine's slurm launcher reads (scontrol, which it asks for the master host, likewise)
_STAND_IN_SRUN = """#!%s
import os, subprocess, sys
args, ntasks = sys.argv[1:], 1
while args[0].startswith('-'):
    option = args.pop(0)
    if option == '-p':
        args.pop(0)
    elif option.startswith('--ntasks='):
        ntasks = int(option.split('=')[1])
env = dict(os.environ, SLURM_NTASKS=str(ntasks), SLURM_NODELIST='localhost')
tasks = [subprocess.Popen(args, env=dict(env, SLURM_PROCID=str(r), SLURM_LOCALID=str(r)))
         for r in range(ntasks)]
sys.exit(max(task.wait() for task in tasks))
"""


@pytest.mark.slow
def test_slurm_train_script_runs_two_gloo_processes(converted_synthetic_kitti, tmp_path):
    """tools/slurm_train.sh -> srun -> train.py --launcher slurm: mmengine's slurm launcher
    on a CPU-only torch, one epoch of 4 frames in 2 steps (2 processes x batch 1)."""
    config = _deterministic_tiny_config(converted_synthetic_kitti, tmp_path / 'tiny_deterministic.py')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(_STAND_IN_SRUN % sys.executable)
    (bin_dir / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    work = tmp_path / 'work'
    run = _start(['bash', 'tools/slurm_train.sh', 'cpu', 'gemini', config, str(work),
                  '--cfg-options', *RUN_OPTIONS, 'train_cfg.max_epochs=1'],
                 tmp_path / 'slurm.log', PATH=f'{bin_dir}:{os.environ["PATH"]}', GPUS='2',
                 GPUS_PER_NODE='2', CPUS_PER_TASK='1', GRES='', PORT=str(_free_port()))
    _wait(run, tmp_path / 'slurm.log')
    log = (tmp_path / 'slurm.log').read_text()
    assert 'Distributed launcher: slurm' in log and 'Distributed training: True' in log
    assert [row['iter'] for row in _logged_iterations(str(work))] == [1, 2]
    assert (work / 'epoch_1.pth').is_file()
