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


@pytest.mark.slow
def test_train_tool_stops_on_corrupt_data_and_keeps_the_last_checkpoint(converted_synthetic_kitti,
                                                                      tmp_path):
    """One clean epoch, then a scan whose reflectance turned NaN: training resumes, stops at
    the first NaN loss with one line, and the clean checkpoint is still the last one."""
    import shutil
    import subprocess
    import sys

    import numpy as np

    from _configs import REPO
    root = tmp_path / 'kitti'
    shutil.copytree(converted_synthetic_kitti, root)
    cfg = 'configs/gemini_det3d/tiny/lidaronly-second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
    work = tmp_path / 'work'
    opts = [f'train_dataloader.dataset.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/kitti_infos_val.pkl',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
            'train_dataloader.batch_size=2']  # 2 steps per epoch: epoch 2 starts at iteration 3

    def train(epochs, *extra):
        return subprocess.run([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work),
                               *extra, '--cfg-options', *opts, f'train_cfg.max_epochs={epochs}'],
                              cwd=REPO, capture_output=True, text=True)

    assert train(1).returncode == 0
    good = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    for scan in (root / 'training' / 'velodyne_reduced').glob('*.bin'):
        points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
        points[:, 3] = np.nan
        points.tofile(scan)
    proc = train(3, '--resume')
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: iteration 3 (epoch 2): loss term') and 'is nan' in last, \
        proc.stderr[-2000:]
    assert not (work / 'epoch_2.pth').exists()
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    kept = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.equal(kept[k], good[k]) for k in good)
