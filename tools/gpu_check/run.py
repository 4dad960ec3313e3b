"""``make gpu-check``: set up the CUDA stack and report on the CUDA path in one run.

    python3 tools/gpu_check/run.py [--out-dir work_dirs/gpu_check] [--skip-setup]
        [--only CHECK ...] [--steps 20] [--batch-size 2] [--workers 4] [--time-budget 480]

1. Without an NVIDIA GPU (``nvidia-smi`` missing or finding none) it says so in one line and
   exits with status 2 before installing anything.
2. ``tools/setup_cuda_env.sh`` installs the CUDA stack (idempotent; ``--skip-setup`` uses the
   Python that runs this script as it is), then this script runs again in that environment.
3. Checks, each reported PASS / FAIL with its figures (a check that breaks is a FAIL row,
   the others still run): spconv CUDA vs CPU, mmcv dynamic scatter CUDA vs the CPU shim,
   numba.cuda KITTI IoU and AP vs the CPU IoU, training steps of the main config (fp32 and
   AMP), end-to-end latency (GeminiFusion, NoFusion, LiDAR-only). Each check has a time
   cap and all share ``--time-budget`` seconds: a check past either is cut and reported.

The report goes to stdout and to ``{out-dir}/report.md`` (rewritten after every check, so
that a run stopped from outside keeps what it measured). Exit status: 0 all checks passed,
1 some failed, 2 no CUDA machine (or a broken set-up).
"""
import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MAIN_CONFIG = ('configs/gemini_det3d/'
               'geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py')
SETUP_SCRIPT = REPO / 'tools' / 'setup_cuda_env.sh'
CHECKS = ('spconv', 'scatter', 'kitti_iou', 'train', 'latency')
NO_CUDA = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', type=Path, default=REPO / 'work_dirs' / 'gpu_check',
                        help='report.md and the checks\' files go here')
    parser.add_argument('--skip-setup', action='store_true',
                        help='do not run tools/setup_cuda_env.sh; use this Python as it is')
    parser.add_argument('--only', nargs='+', choices=CHECKS, metavar='CHECK',
                        help=f'run only these checks ({", ".join(CHECKS)})')
    parser.add_argument('--steps', type=int, default=20, help='training steps per precision')
    parser.add_argument('--batch-size', type=int, default=2, help='training batch size')
    parser.add_argument('--workers', type=int, default=4, help='data loader workers')
    parser.add_argument('--time-budget', type=float, default=480,
                        help='seconds for all the checks (set-up not counted); a check is cut '
                        'at its own cap or at what is left, and reported as failed')
    # set by the script itself when it runs again inside the set-up environment
    parser.add_argument('--in-env', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('steps', 'batch_size'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.workers < 0:
        parser.error('--workers must be >= 0')
    if args.time_budget <= 0:
        parser.error('--time-budget must be > 0')
    return args


def find_nvidia_gpu():
    """The first line of ``nvidia-smi -L`` (e.g. ``GPU 0: NVIDIA H200 (UUID: ...)``), or None
    when there is no nvidia-smi or it finds no GPU. Needs nothing beyond the standard library."""
    smi = shutil.which('nvidia-smi')
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, '-L'], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    gpus = [line for line in done.stdout.splitlines() if line.startswith('GPU ')]
    return gpus[0] if done.returncode == 0 and gpus else None


def run_setup(env_python_file: Path) -> Path:
    """Run the set-up script; returns the Python of the environment it set up."""
    done = subprocess.run(['bash', str(SETUP_SCRIPT), '--print-python', str(env_python_file)],
                          cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(done.returncode or NO_CUDA)
    return Path(env_python_file.read_text().strip())


def machine_facts(argv) -> list:
    """(name, value) rows that say what ran where."""
    import importlib.metadata as metadata

    import torch

    def version(*names):
        for name in names:
            try:
                return f'{name} {metadata.version(name)}'
            except metadata.PackageNotFoundError:
                continue
        return 'not installed'

    smi = shutil.which('nvidia-smi')
    driver = subprocess.run([smi, '--query-gpu=driver_version', '--format=csv,noheader'],
                            capture_output=True, text=True).stdout.strip() if smi else '?'
    try:
        from mmcv.ops import get_compiling_cuda_version
        mmcv_cuda = get_compiling_cuda_version()
    except Exception as error:  # noqa: BLE001
        mmcv_cuda = f'unknown ({type(error).__name__})'
    try:
        from numba import cuda
        numba_cuda = 'sees the GPU' if cuda.is_available() else 'sees NO GPU'
    except Exception as error:  # noqa: BLE001
        numba_cuda = f'unusable ({type(error).__name__})'
    props = torch.cuda.get_device_properties(0)
    return [
        ('date', datetime.datetime.now().isoformat(timespec='seconds')),
        ('command', 'tools/gpu_check/run.py ' + ' '.join(a for a in argv if a != '--in-env')),
        ('GPU', f'{props.name}, {props.total_memory / 1024 ** 3:.0f} GiB, driver {driver}'),
        ('CPU cores', str(os.cpu_count())),
        ('python', platform.python_version()),
        ('torch', f'{torch.__version__} (CUDA {torch.version.cuda})'),
        ('mmcv', f'{version("mmcv")}, ops compiled with CUDA {mmcv_cuda}'),
        ('spconv', version('spconv-cu120', 'spconv-cu121', 'spconv-cu118', 'spconv')),
        ('numba', f'{version("numba")}, numba.cuda {numba_cuda}'),
        ('mmdet3d / mmdet / mmengine',
         ', '.join(version(n) for n in ('mmdet3d', 'mmdet', 'mmengine'))),
    ]


def check_functions():
    """CHECKS name -> (title, function, most seconds it may take); imported here because
    they need the CUDA stack. The caps are generous for an H200 (a run there takes about
    4 minutes in all) and keep one stuck check from eating the others' time."""
    from latency_check import check_latency
    from op_checks import check_dynamic_scatter, check_kitti_iou, check_spconv
    from train_check import check_training
    return {
        'spconv': ('spconv sparse conv: CUDA vs CPU', check_spconv, 90),
        'scatter': ('mmcv dynamic scatter: CUDA vs CPU shim', check_dynamic_scatter, 60),
        'kitti_iou': ('KITTI rotated IoU and AP: numba.cuda vs CPU', check_kitti_iou, 120),
        'train': ('training steps of the main config, fp32 and AMP', check_training, 240),
        'latency': ('end-to-end latency (benchmarks/end_to_end.py)', check_latency, 240),
    }


def torch_sees_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def run_checks(args, argv) -> int:
    """The checks, in this Python (which has the CUDA stack); writes and prints the report."""
    import torch
    if not torch_sees_cuda():
        print(f'gpu-check: torch {torch.__version__} in {sys.executable} sees no CUDA device; '
              'it needs a CUDA build of torch on a CUDA machine', file=sys.stderr)
        return NO_CUDA
    sys.path.insert(0, str(REPO / 'projects'))
    import gemini_det3d  # noqa: F401  (the registries and the shims, as configs import it)
    from mmdet3d.utils import register_all_modules

    from gemini_det3d.utils.config import load_config
    from gpu_report import CheckResult, format_report, run_check, write_report
    register_all_modules(init_default_scope=True)
    ctx = SimpleNamespace(repo=str(REPO), out_dir=str(args.out_dir.resolve()),
                          python=sys.executable, main_config=MAIN_CONFIG,
                          main_cfg=load_config(str(REPO / MAIN_CONFIG)), steps=args.steps,
                          batch_size=args.batch_size, workers=args.workers)
    facts = machine_facts(argv)
    path = args.out_dir / 'report.md'
    results = []
    started = time.monotonic()
    for name, (title, check, cap) in check_functions().items():
        if args.only and name not in args.only:
            continue
        left = args.time_budget - (time.monotonic() - started)
        print(f'[gpu-check] {title} ...', flush=True)
        if left < 10:
            result = CheckResult(False, f'not run: the time budget of {args.time_budget:.0f} s '
                                 '(--time-budget) was spent', title=title)
        else:
            result = run_check(title, check, ctx, timeout_s=min(cap, left))
        results.append(result)
        print(f'[gpu-check]   {"PASS" if result.ok else "FAIL"} '
              f'({result.seconds:.0f} s): {result.summary}', flush=True)
        # rewritten after every check: a run cut short still leaves what it measured
        text = format_report(facts, results)
        write_report(text, path)
    print('\n' + text)
    print(f'gpu-check: report written to {path}')
    return 0 if all(r.ok for r in results) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    gpu = find_nvidia_gpu()
    if gpu is None:
        print('gpu-check: needs a CUDA machine (nvidia-smi finds no NVIDIA GPU); nothing was '
              'installed or run', file=sys.stderr)
        return NO_CUDA
    if args.in_env or args.skip_setup:
        return run_checks(args, argv)
    print(f'[gpu-check] {gpu}; setting up the CUDA stack ({SETUP_SCRIPT.name})', flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    python = run_setup(args.out_dir / 'python_path.txt')
    # same working directory: a relative --out-dir means the same folder
    return subprocess.call([str(python), str(Path(__file__).resolve()), '--in-env', *argv])


if __name__ == '__main__':
    sys.exit(main())
