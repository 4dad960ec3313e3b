"""Frames per second of the synthetic KITTI generator on ONE core.

Usage: python benchmarks/synthetic_speed.py [--frames 100] [--seed 0] [--workers 2]

Writes ``--frames`` complete training frames (velodyne .bin, 1242x375 PNG, calib, label) to a
temporary folder with one process pinned to one CPU and one BLAS thread: that is the figure
the issue's budget (100 frames in under a minute on one core) is about. Also printed, measured
in the same run: where a frame's time goes (scene sampling, LiDAR ray casting, camera
rendering, labels, file writing) and, if ``--workers`` > 1 and the machine has the cores, the
speed-up of that many worker processes over one.
"""
import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from gemini_det3d.data import kitti_io  # noqa: E402
from gemini_det3d.data.camera_render import render_camera  # noqa: E402
from gemini_det3d.data.lidar_scan import simulate_lidar  # noqa: E402
from gemini_det3d.data.synthetic_calib import sample_kitti_calib  # noqa: E402
from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti  # noqa: E402
from gemini_det3d.data.synthetic_labels import label_objects  # noqa: E402
from gemini_det3d.data.synthetic_scene import sample_scene  # noqa: E402
from gemini_det3d.utils.machine import cpu_name  # noqa: E402


def stage_times(frames: int, seed: int) -> dict:
    """Mean seconds per frame of each stage, over ``frames`` frames."""
    totals = dict(scene=0.0, lidar=0.0, camera=0.0, labels=0.0, write=0.0)
    out = Path(tempfile.mkdtemp())
    for i in range(frames):
        rng = np.random.default_rng([seed, i])
        t0 = time.perf_counter()
        calib = sample_kitti_calib(rng)
        scene = sample_scene(rng)
        t1 = time.perf_counter()
        points = simulate_lidar(scene, calib, rng)
        t2 = time.perf_counter()
        image, stats = render_camera(scene, calib, rng)
        t3 = time.perf_counter()
        labels = label_objects(scene, stats, calib, image.shape[:2])
        t4 = time.perf_counter()
        kitti_io.write_velodyne(out / 'a.bin', points)
        kitti_io.write_image(out / 'a.png', image)
        kitti_io.write_calib(out / 'a.txt', calib)
        kitti_io.write_label(out / 'l.txt', labels)
        t5 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[key] += dt
    return {k: v / frames for k, v in totals.items()}


def timed_run(frames: int, seed: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        make_synthetic_kitti(out, frames, 0, 0, seed=seed, progress=False, num_workers=workers)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    print(f'machine: {platform.platform()}, {cpu_name()}, {len(cpus) or os.cpu_count()} CPUs '
          f'available; python {platform.python_version()}, numpy {np.__version__}')
    print(f'settings: {args.frames} training frames (64 x 2000 LiDAR rays, 1242x375 image), '
          f'seed {args.seed}, BLAS/OpenMP threads 1')
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})  # one core: children inherit it too
    one_core = timed_run(args.frames, args.seed, 0)
    print(f'one core:  {args.frames} frames in {one_core:.1f} s = '
          f'{args.frames / one_core:.2f} frames/s ({1000 * one_core / args.frames:.0f} ms/frame)')

    stages = stage_times(min(args.frames, 20), args.seed)
    total = sum(stages.values())
    print('per frame, one core: ' + ', '.join(f'{k} {1000 * v:.0f} ms ({v / total:.0%})'
                                              for k, v in stages.items()))
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    if args.workers > 1 and len(cpus) >= args.workers:
        many = timed_run(args.frames, args.seed, args.workers)
        print(f'{args.workers} workers: {args.frames / many:.2f} frames/s, '
              f'{one_core / many:.2f}x the one-core rate')


if __name__ == '__main__':
    main()
