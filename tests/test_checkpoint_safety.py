"""A checkpoint whose unpickling would run code is refused, by the loader and by every tool
that opens one (test.py, train.py --resume, infer.py, visualize.py), with one line naming the
file and exit 2; its code never runs. A checkpoint that mmengine's Runner writes still loads."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.logging import HistoryBuffer

import gemini_det3d  # noqa: F401  (installs the safe loader)
from _configs import REPO
from gemini_det3d.utils.safe_checkpoint import UnsafeCheckpointError, load_local_checkpoint

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


class CreatesFile:
    """Unpickling this object opens (creates) ``path``: code that runs on load."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


class CallsGetattr:
    """``getattr(HistoryBuffer, name)``: allowed for the statistics methods only."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


def _code_running_checkpoint(folder, legacy=False):
    """``(checkpoint, marker)``: an otherwise ordinary checkpoint whose loading creates
    ``marker``."""
    marker = folder / 'code_ran'
    path = folder / ('legacy.pth' if legacy else 'payload.pth')
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'w': torch.zeros(2)},
                'message_hub': CreatesFile(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    return str(path), marker


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy_format'])
def test_the_loader_refuses_code_and_names_file_and_global(tmp_path, legacy):
    path, marker = _code_running_checkpoint(tmp_path, legacy)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_local_checkpoint(path)
    assert str(info.value).startswith(f'{path}: refused to load: it needs io.open;')
    assert '\n' not in str(info.value) and not marker.exists()
    # the payload is real: an unrestricted load runs it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_mmengine_loads_local_files_through_it(tmp_path):
    from mmengine.runner import load_checkpoint
    path, marker = _code_running_checkpoint(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match='refused to load'):
        load_checkpoint(torch.nn.Linear(2, 1), path, map_location='cpu')
    assert not marker.exists()


def test_getattr_is_allowed_for_history_buffer_statistics_only(tmp_path):
    good, bad = tmp_path / 'good.pth', tmp_path / 'bad.pth'
    torch.save({'mean': CallsGetattr('mean')}, good)
    assert load_local_checkpoint(str(good))['mean'] is HistoryBuffer.mean
    torch.save({'x': CallsGetattr('update')}, bad)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"getattr\(HistoryBuffer, 'update'\) is not a HistoryBuffer stat"):
        load_local_checkpoint(str(bad))


def test_a_file_that_is_no_checkpoint_is_not_called_unsafe(tmp_path):
    path = tmp_path / 'text.pth'
    path.write_text('this is not a checkpoint\n')
    with pytest.raises(Exception) as info:
        load_local_checkpoint(str(path))
    assert not isinstance(info.value, UnsafeCheckpointError)


@pytest.mark.slow
def test_a_checkpoint_of_mmengines_runner_loads_and_resumes(tmp_path):
    """Message hub (HistoryBuffer of numpy arrays), optimizer and scheduler states: the
    allow-list is what they need (each is needed: without it the file is refused)."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Regressor(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)
            self.norm = torch.nn.BatchNorm1d(1)

        def forward(self, inputs, targets=None, mode='tensor'):
            out = self.norm(self.linear(inputs)).squeeze(1)
            return dict(loss=((out - targets) ** 2).mean()) if mode == 'loss' else out

    data = [dict(inputs=torch.rand(2), targets=torch.rand(())) for _ in range(4)]

    def runner(epochs, resume=False):
        return Runner(
            model=Regressor(), work_dir=str(tmp_path / 'work'), experiment_name=f'e{epochs}',
            train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(
                type='default_collate'), sampler=dict(type='DefaultSampler', shuffle=True)),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
            param_scheduler=dict(type='CosineAnnealingLR', T_max=2, by_epoch=True),
            train_cfg=dict(by_epoch=True, max_epochs=epochs), randomness=dict(seed=0),
            resume=resume, default_hooks=dict(logger=dict(type='LoggerHook', interval=1)))

    runner(1).train()
    path = str(tmp_path / 'work' / 'epoch_1.pth')
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert {'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr',
            'numpy.core.multiarray._reconstruct'} <= needed
    checkpoint = load_local_checkpoint(path)
    losses = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(losses, HistoryBuffer) and len(losses.data[0]) == 2
    resumed = runner(2, resume=True)
    resumed.train()
    assert resumed.iter == 4 and resumed.epoch == 2


# ----------------------------------------------------------------------- the four tools
def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-3000:])
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def _data_options(root):
    return [f'train_dataloader.dataset.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
            f'test_evaluator.ann_file={root}kitti_infos_val.pkl',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['test.py', 'train.py', 'infer.py', 'visualize.py'])
def test_each_tool_refuses_a_code_running_checkpoint(tool, converted_synthetic_kitti, tmp_path):
    root = converted_synthetic_kitti
    path, marker = _code_running_checkpoint(tmp_path)
    frame = open(f'{root}ImageSets/val.txt').read().split()[0]
    args = {
        'test.py': [TINY, path, '--work-dir', tmp_path / 'wd'],
        'train.py': [TINY, '--resume', path, '--work-dir', tmp_path / 'wd',
                     '--cfg-options', *_data_options(root)],
        'infer.py': [TINY, path, '--velodyne', f'{root}training/velodyne/{frame}.bin',
                     '--calib', f'{root}training/calib/{frame}.txt',
                     '--image', f'{root}training/image_2/{frame}.png'],
        'visualize.py': [TINY, '--checkpoint', path, '--num', 1, '--out-dir', tmp_path / 'pics',
                         '--renderer', 'software', '--no-progress',
                         '--cfg-options', *_data_options(root)],
    }[tool]
    proc = subprocess.run([sys.executable, f'tools/{tool}', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True,
                          env=dict(os.environ, GEMINI_DEBUG=''))
    line = _one_error_line(proc)
    assert line.startswith(f'error: {path}: refused to load: it needs io.open'), line
    assert not marker.exists(), f'{tool} ran the code in the checkpoint'

