"""gpu-check: training steps of the main config at full resolution on synthetic KITTI frames.

The frames are written by ``tools/make_synthetic_kitti.py`` and converted by
``tools/create_data.py`` (as a user would), once per output folder. Each run is mmengine's
Runner on the main config with only what a timing needs changed: the data root, exactly the
asked number of steps (an iteration-based loop over enough repeats of the frames), no
validation, no checkpoint, random image weights (the machine may be offline).
"""
import copy
import gc
import math
import statistics
import subprocess
import time
from pathlib import Path

from gpu_report import CheckResult, markdown_table

NUM_FRAMES = 4  # synthetic train frames (1 val frame beside them; the converter needs one)
WARMUP_STEPS = 5  # steps left out of the per-step median (cuDNN / allocator warm-up)


def prepare_synthetic_kitti(ctx) -> Path:
    """A converted synthetic KITTI root under the output folder (made once, then reused)."""
    root = Path(ctx.out_dir) / 'synthetic_kitti'
    if (root / 'kitti_infos_train.pkl').is_file():
        return root
    repo = Path(ctx.repo)
    for cmd in ([ctx.python, str(repo / 'tools/make_synthetic_kitti.py'), '--out-dir', str(root),
                 '--num-train', str(NUM_FRAMES), '--num-val', '1', '--seed', '0',
                 '--workers', str(ctx.workers)],
                [ctx.python, str(repo / 'tools/create_data.py'), 'kitti', '--root-path',
                 str(root), '--out-dir', str(root), '--extra-tag', 'kitti']):
        done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f'{Path(cmd[1]).name} failed ({done.returncode}): '
                               + ' / '.join(tail))
    return root


def innermost_dataset(dataset_cfg):
    """The dataset config inside RepeatDataset-style wrappers."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def timing_config(main_cfg, data_root: Path, work_dir: Path, steps: int, batch_size: int,
                  workers: int, amp: bool):
    """The main config set up for ``steps`` timed training steps (see the module docstring)."""
    cfg = copy.deepcopy(main_cfg)
    loader = cfg.train_dataloader
    loader.batch_size = batch_size
    loader.num_workers = workers
    loader.persistent_workers = False
    inner = innermost_dataset(loader.dataset)
    inner.data_root = str(data_root) + '/'
    # exactly `steps` iterations, all within one pass over the repeated frames
    repeats = math.ceil(steps * batch_size / NUM_FRAMES)
    loader.dataset = dict(type='RepeatDataset', times=repeats, dataset=inner)
    loader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=steps, val_interval=10**6)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.model.img_backbone.init_cfg = None
    cfg.load_from, cfg.resume = None, False
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    cfg.visualizer = dict(type='Det3DLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                          name=f'gpu_check_visualizer_{"amp" if amp else "fp32"}')
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'gpu_check_train_{"amp" if amp else "fp32"}_{int(time.time())}'
    if amp:  # as tools/train.py --amp
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    return cfg


def make_step_timer():
    """An mmengine hook that times each training step on the GPU clock and keeps its loss."""
    import torch
    from mmengine.hooks import Hook

    class StepTimer(Hook):
        """Seconds (CUDA-synchronised) and total loss of every training step."""
        priority = 'VERY_LOW'

        def __init__(self):
            self.seconds, self.losses, self._start = [], [], None

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            torch.cuda.synchronize()
            self._start = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self._start)
            if outputs and 'loss' in outputs:
                self.losses.append(float(outputs['loss']))

    return StepTimer()


def train_steps(ctx, data_root: Path, amp: bool) -> dict:
    """Run the timed steps; returns seconds per step, losses and peak GPU memory."""
    import torch
    from mmengine.runner import Runner
    tag = 'amp' if amp else 'fp32'
    cfg = timing_config(ctx.main_cfg, data_root, Path(ctx.out_dir) / f'train_{tag}', ctx.steps,
                        ctx.batch_size, ctx.workers, amp)
    runner = Runner.from_cfg(cfg)
    timer = make_step_timer()
    runner.register_hook(timer)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    runner.train()
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    result = dict(steps=len(timer.seconds), seconds=timer.seconds, losses=timer.losses,
                  wall=wall, peak_allocated=torch.cuda.max_memory_allocated(),
                  peak_reserved=torch.cuda.max_memory_reserved())
    del runner
    gc.collect()
    torch.cuda.empty_cache()
    return result


def check_training(ctx) -> CheckResult:
    """``ctx.steps`` steps of the main config, batch ``ctx.batch_size``, fp32 and AMP."""
    data_root = prepare_synthetic_kitti(ctx)
    rows, ok, runs = [], True, {}
    for amp in (False, True):
        tag = 'AMP (fp16)' if amp else 'fp32'
        try:
            runs[tag] = run = train_steps(ctx, data_root, amp)
        except TimeoutError:  # the check's time cap: stop here, not in the next precision
            raise
        except Exception as error:  # noqa: BLE001  (the other precision may still run)
            ok = False
            rows.append((tag, '-', '-', '-', '-', f'{type(error).__name__}: {error}'[:200]))
            continue
        timed = run['seconds'][WARMUP_STEPS:] or run['seconds']
        finite = bool(run['losses']) and all(math.isfinite(x) for x in run['losses'])
        passed = run['steps'] == ctx.steps and finite
        ok &= passed
        gib = 1024 ** 3
        rows.append((tag, run['steps'], f'{statistics.median(timed):.3f}',
                     f'{run["wall"] / max(run["steps"], 1):.3f}',
                     f'{run["peak_allocated"] / gib:.2f} ({run["peak_reserved"] / gib:.2f})',
                     f'{run["losses"][-1]:.3f}' + ('' if finite else ' (NOT FINITE)')
                     if run['losses'] else 'no loss'))
    first = WARMUP_STEPS + 1 if ctx.steps > WARMUP_STEPS else 1
    details = (f'Main config `{ctx.main_config}`, full resolution (its own train pipeline), '
               f'batch {ctx.batch_size}, {ctx.steps} steps over {NUM_FRAMES} '
               f'synthetic frames (seed 0), {ctx.workers} data workers, random image weights, '
               f'no validation or checkpoint. Step time: CUDA-synchronised, data loading '
               f'excluded, median of steps {first}-{ctx.steps}; wall per step: the '
               'whole `runner.train()` (data loading and start-up included) / steps. Peak '
               'memory: `torch.cuda.max_memory_allocated` (reserved in brackets) since the '
               'model was built.\n\n'
               + markdown_table(('precision', 'steps', 's / step (GPU)', 's / step (wall)',
                                 'peak GPU memory GiB', 'last loss'), rows))
    summary = '; '.join(f'{r[0]}: {r[2]} s/step, peak {r[4].split(" ")[0]} GiB'
                        if r[1] != '-' else f'{r[0]}: {r[5]}' for r in rows)
    return CheckResult(ok, summary, details)
