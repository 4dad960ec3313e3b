"""Test a 3D detector: KITTI AP (AP11 and AP40; bbox / bev / 3d / aos per class and difficulty).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
    python tools/test.py CONFIG CHECKPOINT --split test --submission-dir DIR   # official files

The checkpoint must hold this config's model: weights of another model (missing, unexpected
or reshaped keys, listed), a file that is no checkpoint or one that would run code while it
loads stop the run with one line. Only a model without weights (nothing to load) runs
without a checkpoint.

``--show-dir`` draws what ``--task`` names, as in mmdet3d: ``lidar_det`` the scan with its
boxes (bird's-eye and chase view), ``mono_det`` the camera image with the projected boxes,
``multi-modality_det`` both.

``--split test`` runs on ``kitti_infos_test.pkl`` and writes KITTI's submission format, one
label ``.txt`` per frame named by its frame id (empty for frames without detections).
"""
import argparse
import os
import os.path as osp
import shutil
import sys

from gemini_det3d.utils.cli import run_cli


# the pictures of gemini_det3d.visualization that each of mmdet3d's --task values draws
TASK_PICTURES = {'lidar_det': ('bev', 'chase'), 'mono_det': ('camera',),
                 'multi-modality_det': ('bev', 'chase', 'camera')}


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Test (and evaluate) a 3D detector')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', nargs='?', help='checkpoint file (not needed by a model '
                   'without weights)')
    p.add_argument('--work-dir', help='where logs and metrics are written')
    p.add_argument('--split', choices=['val', 'test'], default='val',
                   help='val: evaluate KITTI AP; test: write submission files')
    p.add_argument('--submission-dir', help='write KITTI label .txt files here (one per frame)')
    p.add_argument('--out', help='dump the raw predictions (a .pkl) here')
    p.add_argument('--show-dir', help='render pictures of the predictions here')
    p.add_argument('--task', choices=list(TASK_PICTURES), default='multi-modality_det',
                   help='what --show-dir draws: the scan (lidar_det), the camera image '
                   '(mono_det) or both')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _test_split_metric(cfg, submission_dir):
    """Point the test loader at the KITTI test split; the metric only writes files."""
    ds = cfg.test_dataloader.dataset
    while 'dataset' in ds:  # RepeatDataset / wrappers
        ds = ds.dataset
    ds.ann_file = 'kitti_infos_test.pkl'
    ds.data_prefix = dict(pts='testing/velodyne_reduced', img='testing/image_2')
    return dict(type='KittiMetric', ann_file=osp.join(ds.data_root, ds.ann_file), metric='bbox',
                format_only=True, submission_prefix=osp.join(submission_dir, '.by_position'))


def _rename_submission_files(ann_file, submission_dir):
    """mmdet3d names the files by the sample's position in the info list; KITTI wants frame
    ids, and one file per frame even without detections."""
    import mmengine
    infos = mmengine.load(ann_file)['data_list']
    staged = osp.join(submission_dir, '.by_position')
    for pos, info in enumerate(infos):
        src = osp.join(staged, f'{pos:06d}.txt')
        dst = osp.join(submission_dir, f"{int(info['sample_idx']):06d}.txt")
        if osp.exists(src):
            os.replace(src, dst)
        else:
            open(dst, 'w').close()
    shutil.rmtree(staged, ignore_errors=True)
    print(f'KITTI submission: {len(infos)} label files in {submission_dir}')


def main(argv=None):
    from mmengine.runner import Runner

    from gemini_det3d.errors import GeminiInputError
    from gemini_det3d.utils.checkpoint_check import check_checkpoint_fits, read_checkpoint
    from gemini_det3d.utils.config import load_config
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint
    if args.checkpoint:
        # no such file / not a checkpoint / unsafe to load: one line before the runner starts
        checkpoint = read_checkpoint(args.checkpoint)

    submission_dir = args.submission_dir
    if args.split == 'test':
        submission_dir = submission_dir or osp.join(cfg.work_dir, 'kitti_submission')
        metric = _test_split_metric(cfg, submission_dir)
    else:
        metric = dict(cfg.test_evaluator)
        if submission_dir:
            metric['submission_prefix'] = osp.join(submission_dir, '.by_position')
    out = args.out or (osp.join(cfg.work_dir, 'results.pkl') if args.show_dir else None)
    cfg.test_evaluator = [metric, dict(type='DumpResults', out_file_path=out)] if out else metric
    if submission_dir:
        os.makedirs(submission_dir, exist_ok=True)

    runner = Runner.from_cfg(cfg)
    if cfg.load_from:
        # mmengine would load weights of another model non-strictly, with a warning
        check_checkpoint_fits(runner.model, checkpoint, args.checkpoint, args.config)
        del checkpoint  # the runner loads it again, into the model
    elif runner.model.state_dict():
        raise GeminiInputError(f'tools/test.py: a CHECKPOINT is needed: the model of '
                               f'{args.config} has weights to load')
    metrics = runner.test()
    # Under several processes the metric and the dumped results are gathered on rank 0; the
    # files below are written once, there.
    from mmengine.dist import is_main_process
    if not is_main_process():
        return metrics
    if metrics:
        import json
        os.makedirs(cfg.work_dir, exist_ok=True)
        with open(osp.join(cfg.work_dir, 'metrics.json'), 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
    if submission_dir:
        _rename_submission_files(metric['ann_file'], submission_dir)
    if args.show_dir:
        from gemini_det3d.visualization import render_dataset_results
        render_dataset_results(cfg, out, args.show_dir, pictures=TASK_PICTURES[args.task])
    return metrics


if __name__ == '__main__':
    run_cli(main)
