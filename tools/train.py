"""Train a 3D detector (mmdet3d's command line; mmengine's Runner does the work).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch   (see tools/dist_train.sh)
    srun -n N python tools/train.py CONFIG --launcher slurm                (see tools/slurm_train.sh)

With a launcher, every process trains on its share of each batch (``batch_size`` is per
process) and mmengine's ``MMDistributedDataParallel`` averages the gradients. Without CUDA
the processes talk over gloo; see :func:`use_cpu_processes` for what that changes.
"""
import argparse
import os
import os.path as osp
import sys

from gemini_det3d.utils.cli import run_cli


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Train a 3D detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale LR by batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _sync_bn_keys(node, key='cfg'):
    """Config keys whose ``type`` is a synchronised BatchNorm (``SyncBN``, ``MMSyncBN``, ...)."""
    if isinstance(node, dict):
        if 'syncbn' in str(node.get('type', '')).lower():
            yield key
        for name, value in node.items():
            yield from _sync_bn_keys(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _sync_bn_keys(value, f'{key}.{i}')


def use_cpu_processes(cfg, config_path):
    """Make a config train with several processes on a machine without CUDA.

    - gloo instead of NCCL (NCCL needs GPUs);
    - the DDP wrapper gets ``device_ids=None``: mmengine passes ``[LOCAL_RANK]``, which
      torch's DistributedDataParallel rejects for a module on the CPU;
    - SyncBN has no CPU implementation: a config asking for it gets one clear line.
    Each process keeps its own BatchNorm statistics (over its share of the batch), as
    plain ``BN`` does on GPUs.
    """
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    from gemini_det3d.errors import GeminiInputError
    sync_bn = [f'sync_bn={cfg.sync_bn!r}'] if cfg.get('sync_bn') else []
    sync_bn += [f'{key}.type' for key in _sync_bn_keys(cfg.model, 'model')]
    if sync_bn:
        raise GeminiInputError(f'{config_path}: {sync_bn[0]}: SyncBN runs on CUDA GPUs only; '
                               'for several CPU processes use BN (per-process statistics)')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = MODEL_WRAPPERS.get(wrapper.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def init_cpu_process_group(launcher, dist_cfg):
    """``mmengine.dist.init_dist`` (pytorch, slurm or mpi launcher) without its
    ``torch.cuda.set_device(local_rank)`` call, which fails when torch has no CUDA.

    The Runner then finds the process group ready and skips its own ``init_dist``.
    """
    from unittest import mock

    import torch
    from mmengine.dist import init_dist
    with mock.patch.object(torch.cuda, 'set_device', lambda device: None):
        init_dist(launcher, **dist_cfg)


def main(argv=None):
    import torch
    from mmengine.runner import Runner

    from gemini_det3d.utils.config import load_config
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_processes(cfg, args.config)
        init_cpu_process_group(args.launcher, cfg.env_cfg.dist_cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    from gemini_det3d.engine import NonFiniteLossError
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except NonFiniteLossError as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    run_cli(main)
