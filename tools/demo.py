"""The main job on the built-in default: synthetic KITTI -> convert -> train -> KITTI AP -> pictures.

    python tools/demo.py [--out-dir work_dirs/demo] [--num-train 100] [--num-val 40] [--epochs N]

Every step is one of the project's tools run as a subprocess, exactly as a user would type
it (the commands are printed); wall time and peak memory of each are measured and
summarised at the end. With data/kitti holding a real KITTI download, the same tools run on
it unchanged (see README).
"""
import argparse
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

import psutil

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


def _tree_rss(proc):
    """Resident memory of a process and all its descendants (data-loader workers), bytes."""
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(step, cmd, timings):
    """Run one tool, sampling the whole process tree's memory every 0.2 s."""
    print(f'\n=== {step}\n$ {" ".join(shlex.quote(c) for c in cmd)}', flush=True)
    start = time.time()
    child = subprocess.Popen(cmd, cwd=REPO)
    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, _tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.2)
    seconds = time.time() - start
    timings.append(dict(step=step, seconds=round(seconds, 1), peak_rss_gb=round(peak / 1e9, 2)))
    code = child.returncode
    if code != 0:
        sys.exit(f'demo: step "{step}" failed with exit code {code}')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/synthetic_kitti')
    p.add_argument('--config', default=TINY)
    p.add_argument('--num-train', type=int, default=100)
    p.add_argument('--num-val', type=int, default=40)
    p.add_argument('--num-test', type=int, default=4)
    p.add_argument('--epochs', type=int, default=None,
                   help='train this many epochs instead of the config\'s, its learning-rate '
                        'schedule stretched to them')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    py = sys.executable
    root = args.data_root.rstrip('/') + '/'
    out = args.out_dir
    timings = []

    if not osp.isfile(osp.join(root, 'kitti_infos_val.pkl')):
        run('generate synthetic KITTI', [py, 'tools/make_synthetic_kitti.py', '--out-dir', root,
                                         '--num-train', str(args.num_train), '--num-val',
                                         str(args.num_val), '--num-test', str(args.num_test),
                                         '--seed', str(args.seed), '--workers',
                                         str(min(2, os.cpu_count() or 1))], timings)
        run('convert (create_data)', [py, 'tools/create_data.py', 'kitti', '--root-path', root,
                                      '--out-dir', root, '--extra-tag', 'kitti'], timings)
    else:
        from gemini_det3d.data.synthetic_stamp import stamp_problem
        problem = stamp_problem(root, seed=args.seed, num_train=args.num_train,
                                num_val=args.num_val, num_test=args.num_test)
        if problem:
            print(f'demo: error: {root} holds a converted data set, but {problem}; remove '
                  f'it (or pass another --data-root) and the demo generates it again',
                  file=sys.stderr)
            sys.exit(2)
        print(f'demo: reusing the converted data set in {root}')
    data_opts = [f'train_dataloader.dataset.dataset.data_root={root}',
                 f'val_dataloader.dataset.data_root={root}',
                 f'test_dataloader.dataset.data_root={root}',
                 f'val_evaluator.ann_file={root}kitti_infos_val.pkl',
                 f'test_evaluator.ann_file={root}kitti_infos_val.pkl',
                 f'randomness.seed={args.seed}']
    # the evaluation is the next step (tools/test.py): no second one inside the training loop
    train_opts = [f'train_cfg.val_begin={10 ** 6}']  # mmengine validates the last epoch otherwise
    if args.epochs:
        # the schedule stretched to the epochs (a cosine over the config's 10 epochs would
        # otherwise leave epochs 11-20 at its last value, 3 % of the base rate)
        from gemini_det3d.utils.config import load_config
        from gemini_det3d.utils.schedule import stretched_schedule_options
        train_opts += stretched_schedule_options(load_config(args.config), args.epochs)
    train_dir = osp.join(out, 'train')
    run('train', [py, 'tools/train.py', args.config, '--work-dir', train_dir,
                  '--cfg-options'] + data_opts + train_opts, timings)
    ckpt = osp.join(train_dir, open(osp.join(train_dir, 'last_checkpoint')).read().strip()) \
        if osp.isfile(osp.join(train_dir, 'last_checkpoint')) else None
    results = osp.join(out, 'val_results.pkl')
    run('evaluate (KittiMetric)', [py, 'tools/test.py', args.config, ckpt, '--work-dir',
                                   osp.join(out, 'test'), '--out', results,
                                   '--cfg-options'] + data_opts, timings)
    pictures = osp.join(out, 'pictures')
    run('render pictures', [py, 'tools/visualize.py', args.config, '--split', 'val',
                            '--results', results, '--out-dir', pictures, '--num', '3',
                            '--cfg-options'] + data_opts, timings)

    train_eval = sum(t['seconds'] for t in timings if t['step'] in ('train', 'evaluate (KittiMetric)'))
    summary = dict(timings=timings, train_plus_eval_minutes=round(train_eval / 60, 2),
                   peak_rss_gb=max(t['peak_rss_gb'] for t in timings))
    with open(osp.join(out, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n=== demo finished')
    for t in timings:
        print(f"  {t['step']:<28} {t['seconds']:>8.1f} s   peak RSS {t['peak_rss_gb']:.2f} GB")
    print(f'  training + evaluation: {summary["train_plus_eval_minutes"]} min on {os.cpu_count()} cores')
    print(f'  data set:     {root}')
    print(f'  checkpoint:   {ckpt}')
    print(f'  KITTI AP:     {osp.join(out, "test")} (log) ; raw predictions {results}')
    print(f'  pictures:     {pictures}')
    print(f'  TensorBoard:  tensorboard --logdir {train_dir}')


if __name__ == '__main__':
    main()
