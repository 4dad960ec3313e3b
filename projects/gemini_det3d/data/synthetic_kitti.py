"""Synthetic scenes written in the exact KITTI object-detection layout.

``make_synthetic_kitti(out_dir, num_train, num_val, num_test, seed)`` writes::

    out_dir/
      ImageSets/{train,val,trainval,test}.txt      6-digit frame ids
      training/{velodyne,image_2,calib,label_2}/   train + val frames (ids 000000...)
      testing/{velodyne,image_2,calib}/            test frames (ids 000000...)

Every frame is one random street scene (:mod:`.synthetic_scene`) seen by a 64-beam LiDAR
(:mod:`.lidar_scan`) and by camera 2 (:mod:`.camera_render`) through the frame's own KITTI-like
calibration (:mod:`.synthetic_calib`); the labels (:mod:`.synthetic_labels`) follow KITTI's
conventions so that mmdet3d's converter puts every box exactly on its object's points.
Frame ``i`` of a split depends only on ``(seed, split, i)``: the same seed gives the same bytes,
whatever the number of workers.
"""
import os
from pathlib import Path
from typing import Optional

import numpy as np

from .camera_render import IMAGE_HW, render_camera
from .kitti_io import (frame_name, write_calib, write_image, write_imageset, write_label,
                       write_velodyne)
from .lidar_scan import simulate_lidar
from .synthetic_calib import sample_kitti_calib
from .synthetic_labels import label_objects
from .synthetic_scene import sample_scene
from .synthetic_stamp import write_stamp

_SPLIT_CODE = {'training': 0, 'testing': 1}


def _scene_and_streams(seed: int, split: str, index: int):
    """``(scene, calib, lidar seed sequence, camera seed sequence)`` of one frame: each part of
    a frame draws from its own stream, so the scene is known without casting or rendering."""
    calib_seq, scene_seq, lidar_seq, camera_seq = np.random.SeedSequence(
        [int(seed), _SPLIT_CODE[split], int(index)]).spawn(4)
    calib = sample_kitti_calib(np.random.default_rng(calib_seq))
    return sample_scene(np.random.default_rng(scene_seq)), calib, lidar_seq, camera_seq


def frame_scene(seed: int, split: str, index: int):
    """``(scene, calib)`` of the frame :func:`generate_frame` makes, without its LiDAR scan or
    picture (every object, labelled or not, for evaluations on the synthetic world)."""
    return _scene_and_streams(seed, split, index)[:2]


def generate_frame(seed: int, split: str, index: int, hw=IMAGE_HW) -> dict:
    """One synthetic frame in memory.

    Returns:
        dict: ``points`` float32 (N, 4) LiDAR frame, ``image`` uint8 (H, W, 3) BGR, ``calib``
        (KITTI matrices), ``labels`` (list of label dicts), ``scene`` (the generating scene),
        ``render_stats`` (:class:`~.camera_render.RenderStats`: which object each pixel shows).
    """
    scene, calib, lidar_seq, camera_seq = _scene_and_streams(seed, split, index)
    points = simulate_lidar(scene, calib, np.random.default_rng(lidar_seq))
    image, stats = render_camera(scene, calib, np.random.default_rng(camera_seq), hw)
    labels = label_objects(scene, stats, calib, hw)
    return dict(points=points, image=image, calib=calib, labels=labels, scene=scene,
                render_stats=stats)


def write_frame(root: Path, seed: int, split: str, index: int) -> int:
    """Generate frame ``index`` of ``split`` and write its files; returns its number of points."""
    frame = generate_frame(seed, split, index)
    name = frame_name(index)
    base = Path(root) / split
    write_velodyne(base / 'velodyne' / f'{name}.bin', frame['points'])
    write_image(base / 'image_2' / f'{name}.png', frame['image'])
    write_calib(base / 'calib' / f'{name}.txt', frame['calib'])
    if split == 'training':
        write_label(base / 'label_2' / f'{name}.txt', frame['labels'])
    return len(frame['points'])


def _write_frame_job(job):
    return write_frame(*job)


def make_synthetic_kitti(out_dir, num_train: int, num_val: int, num_test: int = 0, seed: int = 0,
                         progress: bool = True, num_workers: int = 0) -> dict:
    """Write a complete KITTI-layout data set of synthetic frames, and its stamp
    (``synthetic_kitti.json``: the settings and the generator's fingerprint, ``synthetic_stamp``).

    Args:
        out_dir: the data set's root (created; existing files of the same names are replaced).
        num_train, num_val: frames of ``ImageSets/train.txt`` and ``val.txt`` (ids 0..num_train-1
            and the following num_val ids, all in ``training/``).
        num_test: frames in ``testing/`` (``ImageSets/test.txt``).
        seed: the random seed; the same seed writes the same bytes.
        progress: show a tqdm progress bar.
        num_workers: processes to use (0 or 1: this process only).

    Returns:
        dict: ``root``, ``training``, ``testing`` (Paths), ``imagesets`` ({split: Path}),
        ``frame_ids`` ({split: list of 6-digit names}), ``num_points`` (total written).
    """
    for name, value in (('num_train', num_train), ('num_val', num_val), ('num_test', num_test)):
        if int(value) < 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
    root = Path(out_dir)
    for folder in ('velodyne', 'image_2', 'calib', 'label_2'):
        (root / 'training' / folder).mkdir(parents=True, exist_ok=True)
    for folder in ('velodyne', 'image_2', 'calib'):
        (root / 'testing' / folder).mkdir(parents=True, exist_ok=True)
    frame_ids = {'train': [frame_name(i) for i in range(num_train)],
                 'val': [frame_name(i) for i in range(num_train, num_train + num_val)],
                 'test': [frame_name(i) for i in range(num_test)]}
    frame_ids['trainval'] = frame_ids['train'] + frame_ids['val']
    jobs = ([(root, seed, 'training', i) for i in range(num_train + num_val)] +
            [(root, seed, 'testing', i) for i in range(num_test)])
    results = _run_jobs(jobs, progress, num_workers)
    imagesets = {}
    for split in ('train', 'val', 'trainval', 'test'):
        imagesets[split] = write_imageset(root / 'ImageSets' / f'{split}.txt', frame_ids[split])
    write_stamp(root, seed=seed, num_train=num_train, num_val=num_val, num_test=num_test)
    return dict(root=root, training=root / 'training', testing=root / 'testing',
                imagesets=imagesets, frame_ids=frame_ids, num_points=int(sum(results)))


def _run_jobs(jobs, progress: bool, num_workers: Optional[int]):
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc='synthetic KITTI', unit='frame')
    results = []
    if num_workers and num_workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        with mp.get_context('spawn' if os.name == 'nt' else 'fork').Pool(num_workers) as pool:
            for count in pool.imap(_write_frame_job, jobs, chunksize=1):
                results.append(count)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            results.append(_write_frame_job(job))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return results
