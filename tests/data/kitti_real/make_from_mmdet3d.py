"""Rebuild this folder's raw KITTI files from mmdetection3d's ``tests/data/kitti``.

    python tests/data/kitti_real/make_from_mmdet3d.py MMDET3D [--rev REV] [--out DIR]

``MMDET3D`` is a clone of https://github.com/open-mmlab/mmdetection3d (a work tree or a bare
git directory); the files are read at ``REV`` (default ``HEAD``) with ``git show``.

mmdetection3d keeps KITTI training frame 000000 in its own formats, not KITTI's text files,
so three of the five files are rewritten from what it stores (see README.md):

* ``velodyne/000000.bin``: its ``training/velodyne/000000.bin`` (800 points that miss the
  pedestrian), then its GT-database points of that pedestrian
  (``kitti_gt_database/0_Pedestrian_0.bin``, stored relative to the box's bottom centre)
  moved back by ``box3d_lidar[:3]`` from ``kitti_dbinfos_train.pkl``;
* ``calib/000000.txt``: the seven matrices of ``kitti_infos_train.pkl``, whose float32 values
  are rounded to the 7 significant digits of KITTI's own calib files;
* ``label_2/000000.txt``: the info file's instance, written as a KITTI label line.

``image_2/000000.png`` is copied byte for byte.
"""
import argparse
import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE_DIR = 'tests/data/kitti'
FRAME = '000000'


def git_show(repo: str, rev: str, path: str) -> bytes:
    """The bytes of ``path`` at ``rev`` in the git repository ``repo`` (work tree or bare)."""
    flag = '--git-dir' if (Path(repo) / 'HEAD').is_file() else '-C'
    return subprocess.run(['git', flag, repo, 'show', f'{rev}:{path}'], check=True,
                          capture_output=True).stdout


def kitti_digits(matrix) -> np.ndarray:
    """float32-stored calibration values rounded back to KITTI's 7 significant digits."""
    return np.array([float(f'{v:.6e}') for v in np.ravel(matrix)]).reshape(np.shape(matrix))


def calib_from_info(info: dict) -> dict:
    """KITTI calib matrices (P0-P3 3x4, R0_rect 3x3, Tr_* 3x4) of one v2 info entry."""
    images, lidar = info['images'], info['lidar_points']
    calib = {f'P{i}': kitti_digits(images[f'CAM{i}']['cam2img'])[:3, :4] for i in range(4)}
    calib['R0_rect'] = kitti_digits(images['R0_rect'])[:3, :3]
    calib['Tr_velo_to_cam'] = kitti_digits(lidar['Tr_velo_to_cam'])[:3, :4]
    calib['Tr_imu_to_velo'] = kitti_digits(lidar['Tr_imu_to_velo'])[:3, :4]
    return calib


def label_objects(info: dict, categories: dict) -> list:
    """KITTI label objects (as :func:`gemini_det3d.data.kitti_io.write_label` takes them)."""
    names = {label: name for name, label in categories.items()}
    objects = []
    for inst in info['instances']:
        x, y, z, length, height, width, rotation_y = inst['bbox_3d']
        objects.append(dict(type=names[inst['bbox_label_3d']], truncated=inst['truncated'],
                            occluded=inst['occluded'], alpha=inst['alpha'], bbox=inst['bbox'],
                            hwl=[height, width, length], location=[x, y, z],
                            rotation_y=rotation_y))
    return objects


def full_scan(scene: np.ndarray, dbinfos: dict, read) -> np.ndarray:
    """The scene points followed by every GT-database object's points, back in the LiDAR frame."""
    parts = [scene]
    for infos in dbinfos.values():
        for db in infos:
            points = np.frombuffer(read(db['path']), dtype=np.float32).reshape(-1, 4).copy()
            points[:, :3] += np.asarray(db['box3d_lidar'][:3], dtype=np.float32)
            parts.append(points)
    return np.concatenate(parts).astype(np.float32)


def build(repo: str, rev: str, out: Path) -> None:
    sys.path.insert(0, str(HERE.parents[2] / 'projects'))
    from gemini_det3d.data import kitti_io

    def read(rel: str) -> bytes:
        return git_show(repo, rev, f'{SOURCE_DIR}/{rel}')

    infos = pickle.load(io.BytesIO(read('kitti_infos_train.pkl')))
    info = infos['data_list'][0]
    assert info['lidar_points']['lidar_path'] == f'{FRAME}.bin', info['lidar_points']
    scene = np.frombuffer(read(f'training/velodyne/{FRAME}.bin'), np.float32).reshape(-1, 4)
    dbinfos = pickle.load(io.BytesIO(read('kitti_dbinfos_train.pkl')))
    training = out / 'training'
    for folder in ('velodyne', 'image_2', 'calib', 'label_2'):
        (training / folder).mkdir(parents=True, exist_ok=True)
    kitti_io.write_velodyne(training / 'velodyne' / f'{FRAME}.bin',
                            full_scan(scene, dbinfos, read))
    (training / 'image_2' / f'{FRAME}.png').write_bytes(read(f'training/image_2/{FRAME}.png'))
    kitti_io.write_calib(training / 'calib' / f'{FRAME}.txt', calib_from_info(info))
    kitti_io.write_label(training / 'label_2' / f'{FRAME}.txt',
                         label_objects(info, infos['metainfo']['categories']))
    (out / 'ImageSets').mkdir(exist_ok=True)
    for split in ('train', 'val'):
        kitti_io.write_imageset(out / 'ImageSets' / f'{split}.txt', [FRAME])
    commit = subprocess.run(['git', '--git-dir' if (Path(repo) / 'HEAD').is_file() else '-C',
                             repo, 'rev-parse', rev], check=True, capture_output=True,
                            text=True).stdout.strip()
    print(f'wrote frame {FRAME} from {repo} at {commit} to {out}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mmdet3d', help='mmdetection3d clone (work tree or bare git dir)')
    parser.add_argument('--rev', default='HEAD')
    parser.add_argument('--out', type=Path, default=HERE)
    args = parser.parse_args(argv)
    build(args.mmdet3d, args.rev, args.out)


if __name__ == '__main__':
    main()
