"""Train and test several configs on the same data and budget; a Markdown table + bar chart.

    python tools/ablate.py CONFIG [CONFIG ...] --work-dir work_dirs/ablation
        [--cfg-options key=value ...]   # applied to every config: same data, same budget
        [--seed N]                      # the same training seed for every config (default 0)
        [--probe-camera]                # evaluate through tools/probe_camera.py: + camera-swap drop
    python tools/ablate.py --combine DIR [DIR ...] --work-dir OUT
                                        # one table + chart from earlier runs (one per seed)

An option under a model part that a config does not have (``model.img_backbone.*`` for the
LiDAR-only config, whose ``img_backbone`` is None) is not applied to that config, and a line
says so; every other option reaches every config.

Each config is trained with tools/train.py and evaluated with tools/test.py (KittiMetric) in
its own sub-folder; the table reports 3D AP40 (moderate) per class plus training and test
minutes, measured in this run, and is written to WORK_DIR/ablation.md and WORK_DIR/ablation.png.
With ``--probe-camera`` a config with a camera branch is evaluated by tools/probe_camera.py
instead (as is, pictures swapped between frames, pictures blanked: three passes in its test
minutes); its row gains the camera-swap drop, 3D AP40 moderate summed over the three classes as
is minus with swapped pictures (a model that ignores the camera drops 0).

Each run also writes WORK_DIR/ablation.json (its settings and rows). ``--combine`` trains
nothing: it joins the rows of earlier runs' ablation.json (a run per data seed, say) into one
table with a seed column and a chart with a panel per seed, in ``--work-dir``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

from gemini_det3d.utils.machine import cpu_name

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
COLUMNS = [('Car', 'Car_3D_AP40_moderate_strict'), ('Pedestrian', 'Pedestrian_3D_AP40_moderate_strict'),
           ('Cyclist', 'Cyclist_3D_AP40_moderate_strict'), ('Car BEV', 'Car_BEV_AP40_moderate_strict')]


def _name(config):
    return osp.splitext(osp.basename(config))[0]


def _legend_labels(configs):
    """The chart's legend: each name's first dash-separated word (the fusion or modality, in
    this project's config names) where those tell the configs apart, else the whole names."""
    short = [_name(c).split('-')[0] for c in configs]
    return short if len(set(short)) == len(short) else [_name(c) for c in configs]


def _metric(metrics, suffix):
    hits = [v for k, v in metrics.items() if k.endswith(suffix)]
    return hits[0] if hits else float('nan')


def _absent_part(cfg, key):
    """The dotted prefix of ``key`` that is None in ``cfg`` with more of ``key`` below it
    (``model.img_backbone`` for ``model.img_backbone.init_cfg.checkpoint`` when the config has
    no image branch), else None."""
    node, parts = cfg, key.split('.')
    for depth, part in enumerate(parts[:-1], start=1):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
        if node is None:
            return '.'.join(parts[:depth])
    return None


def applicable_options(config, cfg_options):
    """``(options that apply to config, [(option, reason)] skipped)``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config if osp.isfile(config) else osp.join(REPO, config)).to_dict()
    kept, skipped = [], []
    for option in cfg_options:
        part = _absent_part(cfg, option.split('=', 1)[0])
        if part is None:
            kept.append(option)
        else:
            what = 'no image branch' if part in ('model.img_backbone', 'model.img_neck') else 'no such part'
            skipped.append((option, f'{what} ({part}=None), {option.split("=", 1)[0]} not applied'))
    return kept, skipped


def has_camera_branch(config):
    from mmengine.config import Config
    cfg = Config.fromfile(config if osp.isfile(config) else osp.join(REPO, config))
    return (cfg.get('model') or {}).get('img_backbone') is not None


def run_one(config, work_dir, cfg_options, seed, probe_camera=False):
    train_dir, test_dir = osp.join(work_dir, 'train'), osp.join(work_dir, 'test')
    opts = ['--cfg-options'] + cfg_options if cfg_options else []
    # tools/test.py evaluates each model below; validating inside the training loop as well
    # (mmengine does at the last epoch) would only add minutes to the training column
    # one seed for every config: the differences in the table are the configs', not the draws'
    train_opts = ['--cfg-options', f'train_cfg.val_begin={10 ** 6}', f'randomness.seed={seed}'] + cfg_options
    start = time.time()
    subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', train_dir] + train_opts,
                   cwd=REPO, check=True)
    train_minutes = (time.time() - start) / 60
    ckpt = open(osp.join(train_dir, 'last_checkpoint')).read().strip()
    start = time.time()
    swap_drop = None
    if probe_camera:
        out_json = osp.join(test_dir, 'probe_camera.json')
        subprocess.run([sys.executable, 'tools/probe_camera.py', config, ckpt, '--work-dir', test_dir,
                        '--out-json', out_json] + opts, cwd=REPO, check=True)
        with open(out_json) as f:
            probe = json.load(f)
        metrics = probe['metrics']['as_is']
        swap_drop = round(-probe['differences']['swap']['sum'], 2)
    else:
        subprocess.run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir', test_dir] + opts,
                       cwd=REPO, check=True)
        with open(osp.join(test_dir, 'metrics.json')) as f:
            metrics = json.load(f)
    test_minutes = (time.time() - start) / 60
    return dict(config=config, seed=seed, train_minutes=round(train_minutes, 2), test_minutes=round(test_minutes, 2),
                swap_drop=swap_drop, **{col: round(_metric(metrics, key), 2) for col, key in COLUMNS})


def _seeds(rows):
    return sorted({r.get('seed') for r in rows}, key=str)


def _table(rows, settings):
    """Markdown: one row per config (and seed, when the rows hold more than one)."""
    probed = any(r.get('swap_drop') is not None for r in rows)
    by_seed = len(_seeds(rows)) > 1
    header = '| ' + ('seed | ' if by_seed else '') + 'config | '
    header += ' | '.join(f'{c} 3D AP40 mod.' if 'BEV' not in c else f'{c} AP40 mod.' for c, _ in COLUMNS)
    header += ' | camera-swap drop (sum) |' if probed else ' |'
    header += ' train min | test min |'
    settings_lines = settings if isinstance(settings, list) else [settings]
    lines = [f'Settings: {s}' for s in settings_lines]
    lines += ['', header, '|' + ' --- |' * (len(COLUMNS) + 3 + probed + by_seed)]
    for r in rows:
        drop = ''
        if probed:
            drop = ' no camera |' if r.get('swap_drop') is None else f" {r['swap_drop']:+.2f} |"
        seed = f"{r.get('seed')} | " if by_seed else ''
        lines.append(f"| {seed}{_name(r['config'])} | " + ' | '.join(f'{r[c]:.2f}' for c, _ in COLUMNS)
                     + f" |{drop} {r['train_minutes']:.1f} | {r['test_minutes']:.1f} |")
    return '\n'.join(lines) + '\n'


def _chart(rows, path):
    """Grouped bars (one group per AP column, one bar per config), a panel per seed; a camera
    config's legend entry carries its swap drop."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    seeds = _seeds(rows)
    configs = list(dict.fromkeys(r['config'] for r in rows))
    labels = dict(zip(configs, _legend_labels(configs)))
    fig, axes = plt.subplots(1, len(seeds), figsize=(len(seeds) * (2 + 1.6 * len(configs)), 4),
                             squeeze=False)
    x = np.arange(len(COLUMNS))
    width = 0.8 / max(len(configs), 1)
    for ax, seed in zip(axes[0], seeds):
        for i, config in enumerate(configs):
            row = next((r for r in rows if r['config'] == config and r.get('seed') == seed), None)
            if row is None:
                continue
            label = labels[config]
            if row.get('swap_drop') is not None:
                label += f" (swap drop {row['swap_drop']:+.1f})"
            ax.bar(x + i * width, [row[c] for c, _ in COLUMNS], width, label=label)
        ax.set_xticks(x + width * (len(configs) - 1) / 2, [c if 'BEV' in c else f'{c} 3D' for c, _ in COLUMNS])
        ax.set_ylabel('AP40 (moderate)')
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        ax.set_title('Ablation on the same data and budget' + (f', seed {seed}' if len(seeds) > 1 else ''))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows, work_dir, settings):
    """ablation.md, ablation.png and ablation.json (settings + rows) in ``work_dir``; the table."""
    md = _table(rows, settings)
    with open(osp.join(work_dir, 'ablation.md'), 'w') as f:
        f.write(md)
    with open(osp.join(work_dir, 'ablation.json'), 'w') as f:
        json.dump(dict(settings=settings, rows=rows), f, indent=1)
    _chart(rows, osp.join(work_dir, 'ablation.png'))
    return md


def combine(run_dirs, work_dir):
    """One report from earlier runs' ablation.json, their rows in the order given."""
    rows, settings = [], []
    for d in run_dirs:
        path = osp.join(d, 'ablation.json')
        if not osp.isfile(path):
            sys.exit(f'error: {path}: not found (a run of tools/ablate.py writes it)')
        with open(path) as f:
            run = json.load(f)
        rows += run['rows']
        settings += run['settings'] if isinstance(run['settings'], list) else [run['settings']]
    return write_report(rows, work_dir, settings)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('configs', nargs='*')
    p.add_argument('--work-dir', default='work_dirs/ablation')
    p.add_argument('--seed', type=int, default=0, help='training seed, the same for every config')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides applied to every config (data root, epochs, ...)')
    p.add_argument('--probe-camera', action='store_true',
                   help='evaluate configs with a camera branch through tools/probe_camera.py and '
                   'report the camera-swap drop')
    p.add_argument('--combine', nargs='+', metavar='DIR',
                   help='train nothing: join the ablation.json of these earlier runs')
    args = p.parse_args(argv)
    if bool(args.combine) == bool(args.configs):
        p.error('give configs to run, or --combine DIR ... (not both)')
    os.makedirs(args.work_dir, exist_ok=True)
    if args.combine:
        print(combine(args.combine, args.work_dir))
        print(f'table: {osp.join(args.work_dir, "ablation.md")}  chart: {osp.join(args.work_dir, "ablation.png")}')
        return
    for c in args.configs:
        if not osp.isfile(osp.join(REPO, c)) and not osp.isfile(c):
            sys.exit(f'error: {c}: config file not found')
    threads = os.environ.get('OMP_NUM_THREADS', 'torch default')
    settings = (f"{' '.join(args.cfg_options) or 'config defaults'}; seed {args.seed}; run one after another on "
                f'{cpu_name()}, {os.cpu_count()} cores, OMP_NUM_THREADS={threads}')
    rows = []
    for c in args.configs:
        print(f'\n##### ablation: {c}', flush=True)
        options, skipped = applicable_options(c, args.cfg_options)
        for _, reason in skipped:
            print(f'{_name(c)}: {reason}', flush=True)
        probe = args.probe_camera and has_camera_branch(c)
        rows.append(run_one(c, osp.join(args.work_dir, _name(c)), options, args.seed, probe))
        md = write_report(rows, args.work_dir, settings)
    print('\n' + md)
    print(f'table: {osp.join(args.work_dir, "ablation.md")}  chart: {osp.join(args.work_dir, "ablation.png")}')


if __name__ == '__main__':
    main()
