"""``make gpu-check`` (tools/gpu_check/) on a machine without CUDA: the one-line refusal
before anything is installed, the report of passing and failing checks, and the CPU-side
code of the checks (with ``.cuda()`` made a no-op, so CPU is compared with CPU)."""
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
GPU_CHECK = REPO / 'tools' / 'gpu_check'
RUN = GPU_CHECK / 'run.py'


@pytest.fixture(scope='module')
def gpu_check_modules():
    """tools/gpu_check/'s modules, imported as run.py imports them."""
    return SimpleNamespace(**{name: load_script(f'tools/gpu_check/{name}.py') for name in (
        'run', 'gpu_report', 'op_checks', 'train_check', 'latency_check')})


def fake_nvidia_smi(folder: Path, output: str, status: int) -> Path:
    """A folder holding an ``nvidia-smi`` that prints ``output`` and exits ``status``."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / 'nvidia-smi'
    smi.write_text(f'#!/bin/sh\necho "{output}"\nexit {status}\n')
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return folder


NO_GPU_CASES = {
    'no nvidia-smi': None,
    'driver not loaded': ("NVIDIA-SMI has failed because it couldn't communicate with the "
                          'NVIDIA driver.', 9),
    'no GPU listed': ('No devices were found', 6),
}


def no_gpu_path(case, tmp_path) -> str:
    """A PATH whose only ``nvidia-smi`` (if any) behaves as in ``NO_GPU_CASES[case]``."""
    (tmp_path / 'empty').mkdir(exist_ok=True)
    path = [tmp_path / 'empty']
    if NO_GPU_CASES[case]:
        path.insert(0, fake_nvidia_smi(tmp_path / 'bin', *NO_GPU_CASES[case]))
    return os.pathsep.join(map(str, path))


@pytest.mark.parametrize('case', list(NO_GPU_CASES))
def test_without_a_gpu_one_line_exit_2_before_any_install(case, gpu_check_modules, tmp_path,
                                                          monkeypatch, capsys):
    run = gpu_check_modules.run
    monkeypatch.setenv('PATH', no_gpu_path(case, tmp_path))

    def must_not_run(*args, **kwargs):
        raise AssertionError('the set-up ran on a machine without a GPU')

    monkeypatch.setattr(run, 'run_setup', must_not_run)
    monkeypatch.setattr(run, 'run_checks', must_not_run)
    out_dir = tmp_path / 'report'
    assert run.main(['--out-dir', str(out_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.count('\n') == 1 and 'needs a CUDA machine' in captured.err
    assert not out_dir.exists()


@pytest.mark.slow
def test_make_target_command_without_a_gpu(tmp_path):
    """The command `make gpu-check` runs, as a process: one line, exit 2, nothing installed."""
    env = dict(os.environ, PATH=no_gpu_path('driver not loaded', tmp_path),
               GEMINI_VENV=str(tmp_path / 'venv'))
    done = subprocess.run([sys.executable, str(RUN), '--out-dir', str(tmp_path / 'report')],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and done.stdout == ''
    assert done.stderr.count('\n') == 1 and 'needs a CUDA machine' in done.stderr, done.stderr
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'report').exists()


@pytest.mark.slow
def test_setup_script_refuses_without_a_gpu(tmp_path):
    smi = fake_nvidia_smi(tmp_path / 'bin', 'No devices were found', 6)
    env = dict(os.environ, PATH=os.pathsep.join([str(smi), '/usr/bin', '/bin']),
               GEMINI_VENV=str(tmp_path / 'venv'))
    done = subprocess.run(['bash', str(REPO / 'tools' / 'setup_cuda_env.sh')],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert 'needs a CUDA machine' in done.stderr and done.stderr.count('\n') == 1
    assert not (tmp_path / 'venv').exists()


def test_gpu_listed_but_torch_without_cuda_exits_2(gpu_check_modules, tmp_path, monkeypatch,
                                                   capsys):
    run = gpu_check_modules.run
    smi = fake_nvidia_smi(tmp_path / 'bin', 'GPU 0: NVIDIA Fake (UUID: GPU-0)', 0)
    monkeypatch.setenv('PATH', os.pathsep.join([str(smi), '/usr/bin', '/bin']))
    assert run.find_nvidia_gpu() == 'GPU 0: NVIDIA Fake (UUID: GPU-0)'
    assert run.main(['--skip-setup', '--out-dir', str(tmp_path / 'report')]) == 2
    assert 'sees no CUDA device' in capsys.readouterr().err
    assert not (tmp_path / 'report' / 'report.md').exists()


def test_arguments(gpu_check_modules):
    run = gpu_check_modules.run
    args = run.parse_args(['--only', 'train', 'latency', '--steps', '3'])
    assert args.only == ['train', 'latency'] and args.steps == 3 and args.batch_size == 2
    for bad in (['--steps', '0'], ['--only', 'nonsense'], ['--workers', '-1']):
        with pytest.raises(SystemExit) as exit_info:
            run.parse_args(bad)
        assert exit_info.value.code == 2


def test_failing_check_is_a_row_of_the_report_not_a_crash(gpu_check_modules, tmp_path,
                                                          monkeypatch, capsys):
    """run_checks with CUDA faked present: a check that raises is a FAIL row with its error,
    the next check still runs, the report is printed and written, the exit status is 1."""
    run, gpu_report = gpu_check_modules.run, gpu_check_modules.gpu_report
    ran = []

    def broken(ctx):
        ran.append('broken')
        raise ValueError('spconv exploded')

    def fine(ctx):
        ran.append('fine')
        assert ctx.main_cfg.model.type and ctx.steps == 20
        return gpu_report.CheckResult(True, '1.00x', '| a | b |')

    monkeypatch.setattr(run, 'torch_sees_cuda', lambda: True)
    monkeypatch.setattr(run, 'check_functions', lambda: {'spconv': ('broken op', broken, 60),
                                                         'train': ('fine op', fine, 60)})
    monkeypatch.setattr(run, 'machine_facts', lambda argv: [('GPU', 'fake')])
    status = run.run_checks(run.parse_args(['--out-dir', str(tmp_path)]), [])
    assert status == 1 and ran == ['broken', 'fine']
    text = (tmp_path / 'report.md').read_text()
    assert text in capsys.readouterr().out
    assert '**1 of 2 checks passed.**' in text
    assert '| broken op | FAIL |' in text and 'ValueError: spconv exploded' in text
    assert '| fine op | PASS |' in text and '## fine op: PASS' in text
    assert '| GPU | fake |' in text


def test_a_check_past_its_time_cap_is_cut_and_the_budget_stops_the_rest(
        gpu_check_modules, tmp_path, monkeypatch):
    import time
    run, gpu_report = gpu_check_modules.run, gpu_check_modules.gpu_report
    ran = []

    def stuck(ctx):
        ran.append('stuck')
        time.sleep(30)

    monkeypatch.setattr(run, 'torch_sees_cuda', lambda: True)
    monkeypatch.setattr(run, 'check_functions', lambda: {
        'spconv': ('stuck op', stuck, 1.5),
        'scatter': ('slow op', lambda ctx: ran.append('slow') or time.sleep(2) or
                    gpu_report.CheckResult(True, 'ok'), 60),
        'train': ('late op', lambda ctx: ran.append('late'), 60)})
    monkeypatch.setattr(run, 'machine_facts', lambda argv: [])
    status = run.run_checks(run.parse_args(['--out-dir', str(tmp_path), '--time-budget', '13']),
                            [])
    # 'stuck' cut at 1.5 s; 'slow' started with 11.5 s left; 'late' found < 10 s left
    assert status == 1 and ran == ['stuck', 'slow']
    text = (tmp_path / 'report.md').read_text()
    assert '| stuck op | FAIL |' in text and 'cut after 2 s' in text
    assert '| slow op | PASS |' in text
    assert '| late op | FAIL |' in text and 'time budget of 13 s' in text


def test_all_passing_checks_exit_0(gpu_check_modules, tmp_path, monkeypatch):
    run, gpu_report = gpu_check_modules.run, gpu_check_modules.gpu_report
    monkeypatch.setattr(run, 'torch_sees_cuda', lambda: True)
    monkeypatch.setattr(run, 'check_functions', lambda: {
        'spconv': ('a', lambda ctx: gpu_report.CheckResult(True, 'ok'), 60),
        'latency': ('b', lambda ctx: gpu_report.CheckResult(True, 'ok'), 60)})
    monkeypatch.setattr(run, 'machine_facts', lambda argv: [])
    args = run.parse_args(['--out-dir', str(tmp_path), '--only', 'latency'])
    assert run.run_checks(args, []) == 0
    text = (tmp_path / 'report.md').read_text()
    assert '**1 of 1 checks passed.**' in text and '| b | PASS |' in text and '| a |' not in text


@pytest.fixture
def cuda_as_identity(monkeypatch):
    """``Tensor.cuda()`` and ``Module.cuda()`` return the object itself (CPU)."""
    import torch
    monkeypatch.setattr(torch.Tensor, 'cuda', lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, 'cuda', lambda self, *a, **k: self)


@pytest.fixture(scope='module')
def main_cfg():
    from mmdet3d.utils import register_all_modules

    from gemini_det3d.utils.config import load_config
    register_all_modules(init_default_scope=True)
    return load_config(str(REPO / 'configs/gemini_det3d/geminifusion-mvx_dual-swin-t-fpn_'
                                  'second-secfpn_8xb2-40e_kitti-3d-3class.py'))


def test_scatter_check_compares_and_passes_on_equal_paths(gpu_check_modules, cuda_as_identity):
    result = gpu_check_modules.op_checks.check_dynamic_scatter(SimpleNamespace())
    assert result.ok, result.details
    for reduce in ('max', 'mean', 'sum'):
        assert f'| {reduce} |' in result.details


def test_scatter_check_fails_when_the_other_path_differs(gpu_check_modules, cuda_as_identity,
                                                         monkeypatch):
    from mmcv.ops import scatter_points
    original = scatter_points.dynamic_scatter

    def off_by_a_bit(feats, coors, reduce_type='max'):
        voxel_feats, voxel_coors = original(feats, coors, reduce_type)
        return voxel_feats * 1.001, voxel_coors

    monkeypatch.setattr(scatter_points, 'dynamic_scatter', off_by_a_bit)
    result = gpu_check_modules.op_checks.check_dynamic_scatter(SimpleNamespace())
    assert not result.ok and result.details.count('FAIL') == 3


@pytest.mark.slow
def test_spconv_check_runs_forward_and_backward(gpu_check_modules, cuda_as_identity, main_cfg):
    """The main config's SparseEncoder, CPU against (faked) CUDA: the same path twice."""
    result = gpu_check_modules.op_checks.check_spconv(SimpleNamespace(main_cfg=main_cfg))
    assert result.ok, result.details
    assert 'forward' in result.summary and 'weight_grad' in result.summary


def test_small_scene_voxels_are_unique_and_in_the_grid(gpu_check_modules):
    feats, coors = gpu_check_modules.op_checks.small_scene([41, 1600, 1408], 128)
    coors = coors.numpy()
    assert feats.shape == (len(coors), 128) and len(coors) > 4000
    assert len(np.unique(coors, axis=0)) == len(coors)
    assert (coors[:, 1:] >= 0).all() and (coors[:, 1:] < [41, 1600, 1408]).all()
    assert set(coors[:, 0].tolist()) == {0, 1}


def test_kitti_check_refuses_the_cpu_shim(gpu_check_modules):
    """Without numba.cuda the comparison would be CPU against itself: a FAIL that says so."""
    gpu_report = gpu_check_modules.gpu_report
    result = gpu_report.run_check('kitti', gpu_check_modules.op_checks.check_kitti_iou, None)
    assert not result.ok and 'numba.cuda sees no GPU' in result.summary


def test_kitti_annos_give_an_ap_that_moves_with_the_iou(gpu_check_modules):
    """The random frames of the KITTI check: AP well inside (0, 100), and sensitive to the
    IoU routine (a slightly biased IoU changes it), so equal APs mean equal IoUs."""
    import importlib as il

    from mmdet3d.evaluation import kitti_eval

    from gemini_det3d.compat import KITTI_ROTATE_IOU_MODULE, rotate_iou_cpu_eval
    gts, dts = gpu_check_modules.op_checks.random_kitti_annos()
    classes = list(gpu_check_modules.op_checks.KITTI_CLASSES)
    _, ap = kitti_eval(gts, dts, classes, eval_types=['bbox', 'bev', '3d'])
    key = 'KITTI/Car_3D_AP40_moderate_strict'
    assert 5.0 < ap[key] < 95.0, ap[key]
    module = il.import_module(KITTI_ROTATE_IOU_MODULE)
    original = module.rotate_iou_gpu_eval
    module.rotate_iou_gpu_eval = lambda *a, **k: rotate_iou_cpu_eval(*a, **k) * 0.97
    try:
        _, biased = kitti_eval(gts, dts, classes, eval_types=['bbox', 'bev', '3d'])
    finally:
        module.rotate_iou_gpu_eval = original
    assert abs(biased[key] - ap[key]) > gpu_check_modules.op_checks.AP_TOL * 100


def test_training_config_runs_the_asked_steps(gpu_check_modules, main_cfg, tmp_path):
    train_check = gpu_check_modules.train_check
    cfg = train_check.timing_config(main_cfg, tmp_path / 'data', tmp_path / 'work', steps=20,
                                    batch_size=2, workers=3, amp=True)
    loader = cfg.train_dataloader
    assert loader.batch_size == 2 and loader.num_workers == 3
    assert loader.dataset.type == 'RepeatDataset'
    # exactly 20 steps, all of them in one pass over the repeated synthetic frames
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 20
    assert loader.dataset.times * train_check.NUM_FRAMES >= 20 * 2
    assert loader.dataset.dataset.data_root == str(tmp_path / 'data') + '/'
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    assert cfg.default_hooks.checkpoint is None and cfg.model.img_backbone.init_cfg is None
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    fp32 = train_check.timing_config(main_cfg, tmp_path, tmp_path, 20, 2, 3, amp=False)
    assert fp32.optim_wrapper.type == main_cfg.optim_wrapper.type != 'AmpOptimWrapper'
    # the main config itself is left as it was
    assert main_cfg.train_dataloader.dataset.dataset.data_root != str(tmp_path / 'data') + '/'


TINY_CONFIG = ('configs/gemini_det3d/tiny/'
               'geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py')


@pytest.mark.slow
def test_training_check_end_to_end_on_cpu(gpu_check_modules, tmp_path, monkeypatch):
    """The training check with a tiny config on CPU (CUDA clocks and memory counters made
    no-ops): synthetic data made and converted by the tools, the asked steps run and timed;
    AMP needs a GPU in mmengine, so its row fails and the check fails, with the fp32 row kept."""
    import torch

    from gemini_det3d.utils.config import load_config
    for name in ('synchronize', 'reset_peak_memory_stats', 'empty_cache'):
        monkeypatch.setattr(torch.cuda, name, lambda *a, **k: None)
    for name in ('max_memory_allocated', 'max_memory_reserved'):
        monkeypatch.setattr(torch.cuda, name, lambda *a, **k: 0)
    ctx = SimpleNamespace(repo=str(REPO), out_dir=str(tmp_path), python=sys.executable,
                          main_config=TINY_CONFIG, main_cfg=load_config(str(REPO / TINY_CONFIG)),
                          steps=3, batch_size=1, workers=0)
    result = gpu_check_modules.train_check.check_training(ctx)
    assert (tmp_path / 'synthetic_kitti' / 'kitti_infos_train.pkl').is_file()
    assert not result.ok
    fp32_row = next(line for line in result.details.splitlines() if line.startswith('| fp32 |'))
    cells = [c.strip() for c in fp32_row.strip('|').split('|')]
    assert cells[1] == '3' and float(cells[2]) > 0 and np.isfinite(float(cells[5])), fp32_row
    assert '| AMP (fp16) | - |' in result.details
