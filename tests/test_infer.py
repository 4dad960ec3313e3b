"""tools/infer.py: LiDAR boxes back to KITTI label lines, and one clear line for bad input."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import gemini_det3d  # noqa: F401
from _configs import REPO
from gemini_det3d.data import kitti_io

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
CLASSES = ['Pedestrian', 'Cyclist', 'Car']


def test_lidar_boxes_round_trip_to_the_kitti_labels(converted_synthetic_kitti):
    """Labels -> LiDAR boxes (as mmdet3d's dataset does) -> our conversion -> the labels again."""
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    from gemini_det3d.apis import lidar_boxes_to_kitti_objects
    root = converted_synthetic_kitti
    frame = open(f'{root}ImageSets/train.txt').read().split()[0]
    calib = kitti_io.read_calib(f'{root}training/calib/{frame}.txt')
    labels = [o for o in kitti_io.read_label(f'{root}training/label_2/{frame}.txt')
              if o['type'] in CLASSES]
    assert len(labels) >= 3
    cam = torch.tensor([[*o['location'], o['hwl'][2], o['hwl'][0], o['hwl'][1], o['rotation_y']]
                        for o in labels], dtype=torch.float32)
    lidar = CameraInstance3DBoxes(cam).convert_to(
        Box3DMode.LIDAR, np.linalg.inv(kitti_io.lidar2cam(calib)))
    hw = kitti_io.check_image(f'{root}training/image_2/{frame}.png')
    objects = lidar_boxes_to_kitti_objects(
        lidar, torch.linspace(0.9, 0.5, len(labels)),
        torch.tensor([CLASSES.index(o['type']) for o in labels]), CLASSES, calib, hw)
    assert len(objects) == len(labels)
    for got, want in zip(objects, labels):
        assert got['type'] == want['type']
        np.testing.assert_allclose(got['location'], want['location'], atol=1e-3)
        np.testing.assert_allclose(got['hwl'], want['hwl'], atol=1e-3)
        assert abs(np.sin(got['rotation_y'] - want['rotation_y'])) < 1e-3
        # the label's 2D box is the projected 3D box clipped to the image (the generator's rule)
        np.testing.assert_allclose(got['bbox'], want['bbox'], atol=1.0)
        kitti_io.format_label_line(got)  # a writable KITTI line


@pytest.mark.slow
def test_infer_rejects_a_file_that_is_not_a_point_cloud(converted_synthetic_kitti, tmp_path):
    root = converted_synthetic_kitti
    bad = tmp_path / 'not_a_cloud.bin'
    bad.write_bytes(b'hello, this is text')  # 19 bytes: not a multiple of 16
    proc = subprocess.run(
        [sys.executable, 'tools/infer.py', TINY, str(tmp_path / 'unused.pth'),
         '--velodyne', str(bad), '--calib', f'{root}training/calib/000000.txt',
         '--image', f'{root}training/image_2/000000.png'],
        cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize('drop_key', ['P2'])
def test_infer_names_a_calib_file_missing_a_key(converted_synthetic_kitti, tmp_path, drop_key):
    root = converted_synthetic_kitti
    calib = tmp_path / 'calib.txt'
    text = open(f'{root}training/calib/000000.txt').read().splitlines()
    calib.write_text('\n'.join(l for l in text if not l.startswith(drop_key + ':')) + '\n')
    proc = subprocess.run(
        [sys.executable, 'tools/infer.py', TINY, str(tmp_path / 'unused.pth'),
         '--velodyne', f'{root}training/velodyne/000000.bin', '--calib', str(calib),
         '--image', f'{root}training/image_2/000000.png'],
        cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and str(calib) in proc.stderr and drop_key in proc.stderr
