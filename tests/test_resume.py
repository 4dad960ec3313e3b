"""Crash-safe, exactly resumable training.

* A run SIGKILLed in the middle of epoch 3 and restarted with ``--resume`` ends with the
  same weights, optimizer state and losses as an uninterrupted run of the same seed.
* A checkpoint write killed half-way leaves the previous checkpoint and ``last_checkpoint``
  loadable and nothing partial under the final name.
"""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from _configs import REPO, load

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
EPOCHS, ITERS_PER_EPOCH = 3, 2  # 4 training frames, 2 per batch


# ---------------------------------------------------------------- exact resume (end to end)
def _train_options(root):
    """Tiny and deterministic: 3 epochs x 2 iterations, small images, at most 3000 voxels a
    frame, no validation (after 3 tiny epochs every AP is 0: equal weights say more)."""
    pipeline = load(TINY).train_dataloader.dataset.dataset.pipeline
    resize = next(i for i, step in enumerate(pipeline) if step['type'] == 'RandomResize')
    return [f'train_dataloader.dataset.dataset.data_root={root}',
            f'train_dataloader.dataset.dataset.pipeline.{resize}.scale=(312,94)',
            'model.data_preprocessor.voxel_layer.max_voxels=(3000,3000)',
            f'val_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_begin={EPOCHS + 1}',
            'default_hooks.logger.interval=1', 'randomness.seed=0', 'randomness.deterministic=True',
            'train_dataloader.batch_size=2']  # 2 steps per epoch, as the test's kill points assume


def _train(root, work, *extra, popen=False):
    cmd = [sys.executable, 'tools/train.py', TINY, '--work-dir', str(work), *extra,
           '--cfg-options', *_train_options(root)]
    # One intra-op thread: bitwise equality is asked for, and one thread is the faster choice
    # on a shared 2-core machine. (Runs used to differ with more threads because of spconv's
    # racy CPU scatter-add, now replaced: gemini_det3d.compat item 6.)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if popen:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def _scalars(work):
    """The logged scalar records of each run in ``work``, oldest run first."""
    runs = []
    for run in sorted(d for d in os.listdir(work) if osp.isdir(osp.join(work, d))):
        path = osp.join(work, run, 'vis_data', 'scalars.json')
        if osp.exists(path):
            with open(path) as f:
                runs.append([json.loads(line) for line in f if line.strip()])
    return runs


def _train_losses(records, epoch):
    """``{(iteration, loss name): value}`` of the iterations logged in ``epoch``."""
    return {(r['iter'], k): v for r in records if r.get('epoch') == epoch and 'loss' in r
            for k, v in r.items() if k.startswith('loss')}


def _checkpoint(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _assert_tensors_close(actual, expected, what):
    if torch.is_tensor(expected):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=what)
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), what
        for key in expected:
            _assert_tensors_close(actual[key], expected[key], f'{what}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_tensors_close(a, e, f'{what}[{i}]')


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_matches_uninterrupted_run(converted_synthetic_kitti, tmp_path):
    root = converted_synthetic_kitti
    work_a, work_b = tmp_path / 'uninterrupted', tmp_path / 'killed'
    run_a = _train(root, work_a)
    assert run_a.returncode == 0, run_a.stderr[-3000:]

    # run B: SIGKILL once the first iteration of epoch 3 is logged (the second is running)
    proc = _train(root, work_b, popen=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if f'Epoch(train) [{EPOCHS}][1/{ITERS_PER_EPOCH}]' in ' '.join(line.split()):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, ''.join(seen[-30:])
    assert (work_b / 'epoch_2.pth').exists() and not (work_b / f'epoch_{EPOCHS}.pth').exists()
    assert (work_b / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')

    resumed = _train(root, work_b, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    final_a, final_b = (_checkpoint(w / f'epoch_{EPOCHS}.pth') for w in (work_a, work_b))
    _assert_tensors_close(final_b['state_dict'], final_a['state_dict'], 'state_dict')
    _assert_tensors_close(final_b['optimizer']['state'], final_a['optimizer']['state'], 'optimizer')
    # the weights did move during the replayed epoch: equal results are not equal inputs
    before = _checkpoint(work_a / 'epoch_2.pth')['state_dict']
    assert any(not torch.equal(before[k], v) for k, v in final_a['state_dict'].items())

    (log_a, ), (_, log_resumed) = _scalars(work_a), _scalars(work_b)
    losses_a = _train_losses(log_a, EPOCHS)
    assert len({it for it, _ in losses_a}) == ITERS_PER_EPOCH
    assert _train_losses(log_resumed, EPOCHS) == pytest.approx(losses_a, rel=1e-5)
    # the iteration logged (in text, 4 decimals) just before the kill was the same one too
    first = min(it for it, _ in losses_a)
    killed_losses = dict(re.findall(r'(loss\w*): ([-\d.]+)', seen[-1]))
    assert {name: float(v) for name, v in killed_losses.items()} == pytest.approx(
        {name: v for (it, name), v in losses_a.items() if it == first}, abs=1e-4)


# ---------------------------------------------------------------- epoch-seeded workers
class _RandomDataset(torch.utils.data.Dataset):
    """What an augmentation sees: one numpy and one python random number per sample."""

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        import random
        return np.random.rand(), random.random()


def _epoch_draws(hook, runner, epoch):
    runner.epoch = epoch
    hook.before_train_epoch(runner)
    return [tuple(map(float, pair)) for pair in runner.train_loop.dataloader]


def test_worker_augmentations_change_every_epoch_and_replay_on_resume():
    from mmengine.dataset import worker_init_fn
    from functools import partial

    from gemini_det3d.engine import EpochSeedHook

    def runner():
        # mmengine's own worker seeding (the same seed every epoch) until the hook replaces it
        loader = torch.utils.data.DataLoader(
            _RandomDataset(), batch_size=None, num_workers=1, persistent_workers=False,
            worker_init_fn=partial(worker_init_fn, num_workers=1, rank=0, seed=0))
        return SimpleNamespace(seed=0, epoch=0, train_loop=SimpleNamespace(dataloader=loader))

    hook, uninterrupted = EpochSeedHook(), runner()
    draws = [_epoch_draws(hook, uninterrupted, epoch) for epoch in range(3)]
    assert len({tuple(d) for d in draws}) == 3, draws  # fresh augmentations every epoch
    assert _epoch_draws(EpochSeedHook(), runner(), 2) == draws[2]  # resumed at epoch 3


# ---------------------------------------------------------------- atomic checkpoint writes
_WRITER = r'''
import sys, torch
sys.path.insert(0, sys.argv[1])
import gemini_det3d.engine.atomic_file_backend  # registers 'atomic_local'
from mmengine.runner.checkpoint import save_checkpoint
numel, version = int(sys.argv[3]), 0
while True:  # rewrite the same checkpoint, each time a new version
    version += 1
    save_checkpoint({'version': version, 'state_dict': {'w': torch.full((numel, ), float(version))}},
                    sys.argv[2], backend_args=dict(backend='atomic_local'))
    print('saved', version, flush=True)
'''
_PROJECTS = osp.join(REPO, 'projects')


def _file_sizes(directory):
    sizes = []
    for entry in os.scandir(directory):
        try:
            sizes.append(entry.stat().st_size)
        except FileNotFoundError:  # renamed or removed meanwhile
            pass
    return sizes


@pytest.mark.slow
def test_checkpoint_write_killed_midway_leaves_previous_checkpoint_loadable(tmp_path):
    """SIGKILL a process while it is re-saving a 64 MB checkpoint: the file under the final
    name is still a whole checkpoint, and the leftover temporary file is cleaned up."""
    from gemini_det3d.engine import remove_stale_temp_files
    path, numel = tmp_path / 'epoch_1.pth', 16 * 2**20
    proc = subprocess.Popen([sys.executable, '-c', _WRITER, _PROJECTS, str(path), str(numel)],
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # (mmengine logs to stdout too)
            if line.startswith('saved '):
                break
        else:
            pytest.fail('the writer process failed')
        full_size = path.stat().st_size
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a file being written: 0 < size < full
            if any(0 < size < full_size for size in _file_sizes(tmp_path)):
                break
        else:
            pytest.fail('never saw a checkpoint half-written')
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert ckpt['version'] >= 1 and ckpt['state_dict']['w'].numel() == numel
    assert torch.all(ckpt['state_dict']['w'] == ckpt['version'])
    leftovers = sorted(set(os.listdir(tmp_path)) - {path.name})
    assert leftovers and all(name.endswith('.tmp') for name in leftovers)  # the killed write
    assert remove_stale_temp_files(tmp_path) and os.listdir(tmp_path) == [path.name]


class _FakeRunner(SimpleNamespace):
    """What CheckpointHook needs of a Runner; save_checkpoint writes as Runner's does."""

    def save_checkpoint(self, out_dir, filename, file_client_args=None, backend_args=None, **kwargs):
        from mmengine.fileio import join_path
        from mmengine.runner.checkpoint import save_checkpoint
        save_checkpoint({'state_dict': {'w': torch.tensor(float(self.epoch + 1))},
                         'message_hub': self.message_hub.state_dict()},
                        join_path(out_dir, filename, backend_args=backend_args),
                        backend_args=backend_args)


def test_failed_save_keeps_pointer_and_previous_checkpoint(tmp_path, monkeypatch):
    """With max_keep_ckpts=1 a save that dies half-way must not have deleted the only good
    checkpoint, nor moved ``last_checkpoint``, nor left a partial epoch_2.pth."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner.checkpoint import find_latest_checkpoint
    from mmdet3d.registry import HOOKS

    import gemini_det3d  # noqa: F401  (registers the hook and the backend)
    cfg = load(TINY).default_hooks.checkpoint
    hook = HOOKS.build(dict(cfg, max_keep_ckpts=1))
    runner = _FakeRunner(work_dir=str(tmp_path), epoch=0, iter=0, max_epochs=EPOCHS,
                         logger=MMLogger.get_current_instance(),
                         message_hub=MessageHub.get_instance('test_resume_checkpoint_hook'))
    hook.before_train(runner)
    hook.after_train_epoch(runner)
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')

    def dies_before_the_data_is_on_disk(fd):
        raise KeyboardInterrupt('killed while saving')

    runner.epoch = 1
    monkeypatch.setattr(os, 'fsync', dies_before_the_data_is_on_disk)
    with pytest.raises(KeyboardInterrupt):
        hook.after_train_epoch(runner)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'last_checkpoint']
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_1.pth')
    assert _checkpoint(tmp_path / 'epoch_1.pth')['state_dict']['w'].item() == 1.0

    hook.after_train_epoch(runner)  # the retried save succeeds and only then prunes epoch 1
    assert sorted(os.listdir(tmp_path)) == ['epoch_2.pth', 'last_checkpoint']
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
