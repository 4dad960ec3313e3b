"""Statistics of the synthetic KITTI world beside published KITTI figures.

Usage: python benchmarks/synthetic_stats.py [--root DIR] [--seed 0] [--num-train 100]
       [--num-val 40] [--workers 2]

Without ``--root`` it generates the demo's data set (seed 0, 100 train + 40 val frames, as
``tools/demo.py`` does) into a temporary folder; with ``--root`` it reads a generated (or real)
KITTI tree's ``training/`` frames listed in ``ImageSets/trainval.txt`` (else train + val).
Prints a Markdown table: labelled objects per frame per class, the median number of LiDAR
points inside each labelled 3D box and the median 2D box height (pixels) per class for
0-20 / 20-40 / 40+ m (distance of the box centre from camera 0 in bird's-eye view), each
beside the published KITTI figure where there is one, and their ratio.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gemini_det3d.data import kitti_io

CLASSES = ('Car', 'Van', 'Truck', 'Pedestrian', 'Person_sitting', 'Cyclist', 'Misc', 'DontCare')
DISTANCE_BINS = ((0.0, 20.0, '0-20 m'), (20.0, 40.0, '20-40 m'), (40.0, np.inf, '40+ m'))
KITTI_TRAIN_FRAMES = 7481
# label counts of KITTI's object training set (7,481 frames): see docs/synthetic-world.md
KITTI_COUNTS = {'Car': 28742, 'Van': 2914, 'Truck': 1094, 'Pedestrian': 4487, 'Person_sitting': 222,
                'Cyclist': 1627, 'Misc': 973, 'DontCare': 11295}
# published medians of LiDAR points per object / 2D box heights by distance: none found
# (docs/synthetic-world.md lists what was searched); keys (class, bin label) -> value
KITTI_POINTS = {}
KITTI_HEIGHTS = {}


def _frame_ids(root: Path):
    sets = root / 'ImageSets'
    if (sets / 'trainval.txt').is_file():
        return kitti_io.read_imageset(sets / 'trainval.txt')
    ids = []
    for split in ('train', 'val'):
        if (sets / f'{split}.txt').is_file():
            ids += kitti_io.read_imageset(sets / f'{split}.txt')
    return ids


def points_in_label_boxes(points: np.ndarray, calib: dict, labels) -> np.ndarray:
    """(M,) number of LiDAR points (N, 4) inside each label's 3D box (upright in camera 0)."""
    hom = np.concatenate([points[:, :3], np.ones((len(points), 1))], 1)
    cam = (hom @ kitti_io.lidar2cam(calib).T)[:, :3]
    counts = []
    for obj in labels:
        h, w, l = obj['hwl']
        c, s = np.cos(obj['rotation_y']), np.sin(obj['rotation_y'])
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        local = (cam - (obj['location'] - [0, h / 2, 0])) @ rot
        counts.append(int((np.abs(local) <= [l / 2, h / 2, w / 2]).all(1).sum()))
    return np.array(counts, int)


def collect(root: Path):
    ids = _frame_ids(root)
    rows = []  # (class, distance, points, 2D height)
    for name in ids:
        paths = kitti_io.kitti_frame_paths(root, 'training', name)
        labels = kitti_io.read_label(paths['label_2'])
        boxed = [o for o in labels if o['type'] != 'DontCare']
        counts = points_in_label_boxes(kitti_io.read_velodyne(paths['velodyne']),
                                       kitti_io.read_calib(paths['calib']), boxed)
        for obj, count in zip(boxed, counts):
            x, _, z = obj['location']
            height = float(obj['bbox'][3] - obj['bbox'][1])
            rows.append((obj['type'], float(np.hypot(x, z)), int(count), height))
        rows += [('DontCare', np.nan, -1, float(o['bbox'][3] - o['bbox'][1]))
                 for o in labels if o['type'] == 'DontCare']
    return len(ids), rows


def _cell(value, published, fmt='{:.2f}'):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return 'none', '—' if published is None else fmt.format(published), '—'
    ours = fmt.format(value)
    if published is None:
        return ours, 'no published figure', '—'
    return ours, fmt.format(published), f'{value / published:.2f}'


def table(num_frames, rows) -> str:
    lines = ['| statistic | class | synthetic | KITTI (published) | ratio |', '|---|---|---|---|---|']
    for cls in CLASSES:
        per_frame = sum(r[0] == cls for r in rows) / max(num_frames, 1)
        ours, kitti, ratio = _cell(per_frame, KITTI_COUNTS[cls] / KITTI_TRAIN_FRAMES, '{:.3f}')
        lines.append(f'| objects per frame | {cls} | {ours} | {kitti} | {ratio} |')
    for what, column, published in (('LiDAR points per object (median)', 2, KITTI_POINTS),
                                     ('2D box height, px (median)', 3, KITTI_HEIGHTS)):
        for cls in CLASSES[:-1]:
            for lo, hi, label in DISTANCE_BINS:
                values = [r[column] for r in rows if r[0] == cls and lo <= r[1] < hi]
                value = float(np.median(values)) if values else None
                ours, kitti, ratio = _cell(value, published.get((cls, label)), '{:.0f}')
                lines.append(f'| {what}, {label} | {cls} | {ours} (n={len(values)}) | {kitti} | {ratio} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--root', help='a KITTI tree to read (default: generate the demo set)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=100)
    p.add_argument('--num-val', type=int, default=40)
    p.add_argument('--workers', type=int, default=2)
    args = p.parse_args(argv)
    from gemini_det3d.utils.machine import cpu_name
    if args.root:
        root = Path(args.root)
        print(f'reading {root}')
    else:
        from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti
        root = Path(tempfile.mkdtemp(prefix='synthetic_stats_'))
        start = time.perf_counter()
        make_synthetic_kitti(root, args.num_train, args.num_val, 0, seed=args.seed, progress=False,
                             num_workers=args.workers)
        print(f'generated {args.num_train + args.num_val} frames (seed {args.seed}) in '
              f'{time.perf_counter() - start:.1f} s with {args.workers} workers on {cpu_name()}')
    num_frames, rows = collect(root)
    print(f'{num_frames} frames\n')
    print(table(num_frames, rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
