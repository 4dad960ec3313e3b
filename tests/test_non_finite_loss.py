"""Training stops at the first non-finite loss term, naming it, before the weights change."""
import math

import pytest
import torch

import gemini_det3d  # noqa: F401
from gemini_det3d.engine import NonFiniteLossError, NonFiniteLossGuardHook


class _Runner:
    def __init__(self, model):
        self.model, self.iter, self.epoch, self.work_dir = model, 6, 1, '/tmp/wd'


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def parse_losses(self, losses):
        total = sum(v for v in losses.values())
        return total, {k: v.item() for k, v in losses.items()}


def test_guard_names_iteration_and_term_and_leaves_finite_losses_alone():
    model = _Model()
    hook = NonFiniteLossGuardHook()
    hook.before_train(_Runner(model))
    total, _ = model.parse_losses({'loss_cls': model.w.sum(), 'loss_bbox': model.w.sum() * 2})
    assert total.item() == pytest.approx(9.0)
    with pytest.raises(NonFiniteLossError, match=r"iteration 7 \(epoch 2\): loss term 'loss_bbox' is nan"):
        model.parse_losses({'loss_cls': model.w.sum(), 'loss_bbox': model.w.sum() * math.nan})
    with pytest.raises(NonFiniteLossError, match="'loss_dir' is inf"):
        model.parse_losses({'loss_dir': [model.w.sum(), model.w.sum() * math.inf]})


def test_train_tool_stops_on_nan_and_keeps_the_last_checkpoint(converted_synthetic_kitti, tmp_path):
    """End to end: a learning rate that blows the loss up ends in one line, finite weights."""
    import subprocess
    import sys

    from _configs import REPO
    cfg = 'configs/gemini_det3d/tiny/lidaronly-second-secfpn_1xb2-cpu_synthetic-kitti-3d-3class.py'
    root = converted_synthetic_kitti
    opts = [f'train_dataloader.dataset.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'train_cfg.max_epochs=6', 'train_cfg.val_interval=100',
            # no clipping and an absurd learning rate: the loss leaves the floats quickly
            'optim_wrapper.clip_grad=None', 'optim_wrapper.optimizer.lr=1e6',
            'param_scheduler=[]', 'default_hooks.checkpoint.interval=1']
    proc = subprocess.run([sys.executable, 'tools/train.py', cfg, '--work-dir', str(tmp_path),
                           '--cfg-options', *opts], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: iteration ') and "loss term 'loss_" in last, proc.stderr[-2000:]
    for ckpt in tmp_path.glob('epoch_*.pth'):
        state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), ckpt
