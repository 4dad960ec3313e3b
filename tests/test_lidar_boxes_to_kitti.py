"""LiDAR boxes -> KITTI label objects, against an independent projection with the calib.

The reference below follows the KITTI devkit's geometry (camera box corners by R_y(ry),
projected with P2) and mmdet3d KittiMetric's documented rules: a box is kept when its
projected 2D box overlaps the image and its LiDAR bottom centre lies in the default
``pcd_limit_range`` [0, -40, -3, 70.4, 40, 0]; the 2D box is clipped to [0, W] x [0, H];
alpha is rotation_y minus the LiDAR-frame azimuth of the box.
"""
import numpy as np
import pytest
import torch

import gemini_det3d  # noqa: F401
from gemini_det3d.data import kitti_io

# KITTI training frame 000000's calibration (the dataset's published values)
CALIB = dict(
    P2=np.array([[7.215377e+02, 0, 6.095593e+02, 4.485728e+01],
                 [0, 7.215377e+02, 1.728540e+02, 2.163791e-01],
                 [0, 0, 1, 2.745884e-03]]),
    R0_rect=np.array([[9.999239e-01, 9.837760e-03, -7.445048e-03],
                      [-9.869795e-03, 9.999421e-01, -4.278459e-03],
                      [7.402527e-03, 4.351614e-03, 9.999631e-01]]),
    Tr_velo_to_cam=np.array([[7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
                             [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
                             [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]]))
HW = (375, 1242)
CLASSES = ['Pedestrian', 'Cyclist', 'Car']
# LiDAR boxes (x, y, z of the bottom centre, dx, dy, dz, yaw)
BOXES = {
    'in view': [15.0, 1.0, -1.7, 4.0, 1.7, 1.5, 0.3],
    'yaw past pi': [25.0, -3.0, -1.6, 3.8, 1.6, 1.5, 3.5],
    'partly left of the image': [6.0, 5.5, -1.7, 4.2, 1.8, 1.5, 1.2],
    'partly right of the image': [7.0, -5.5, -1.7, 4.2, 1.8, 1.5, -0.4],
    'behind the camera': [-6.0, 0.5, -1.7, 4.0, 1.7, 1.5, 0.0],
    'left of the view': [8.0, 20.0, -1.7, 4.0, 1.7, 1.5, 0.0],
    'beyond 70.4 m': [72.0, 0.0, -1.7, 4.0, 1.7, 1.5, 0.0],
}
KEPT = ['in view', 'yaw past pi', 'partly left of the image', 'partly right of the image']


def _reference(box):
    """The KITTI label object of one LiDAR box, or None where KittiMetric drops it."""
    x, y, z, dx, dy, dz, yaw = box
    lidar2cam = kitti_io.lidar2cam(CALIB)
    loc = (lidar2cam @ [x, y, z, 1.0])[:3]
    ry = (-yaw - np.pi / 2 + np.pi) % (2 * np.pi) - np.pi  # LiDAR yaw -> KITTI rotation_y
    l, h, w = dx, dz, dy
    local = np.array([[l, l, -l, -l, l, l, -l, -l],
                      [0, 0, 0, 0, -2 * h, -2 * h, -2 * h, -2 * h],
                      [w, -w, -w, w, w, -w, -w, w]]) / 2
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    corners = rot_y @ local + loc[:, None]
    uvd = CALIB['P2'] @ np.vstack([corners, np.ones(8)])
    uv = uvd[:2] / uvd[2]
    x1, y1, x2, y2 = *uv.min(1), *uv.max(1)
    in_range = 0 < x < 70.4 and -40 < y < 40 and -3 < z < 0
    if not (in_range and x1 < HW[1] and y1 < HW[0] and x2 > 0 and y2 > 0):
        return None
    return dict(bbox=np.clip([x1, y1, x2, y2], 0, [HW[1], HW[0], HW[1], HW[0]]),
                location=loc, hwl=[h, w, l], rotation_y=ry,
                alpha=ry - np.arctan2(-y, x))


def _boxes(names):
    from mmdet3d.structures import LiDARInstance3DBoxes
    return LiDARInstance3DBoxes(torch.tensor([BOXES[n] for n in names], dtype=torch.float32))


def test_kitti_objects_match_the_projection_and_kittimetric_rules():
    from gemini_det3d.apis import lidar_boxes_to_kitti_objects
    names = list(BOXES)
    boxes = _boxes(names)
    before = boxes.tensor.clone()
    scores = torch.linspace(0.9, 0.3, len(names))
    labels = torch.tensor([2, 2, 0, 1, 2, 2, 2])
    objects = lidar_boxes_to_kitti_objects(boxes, scores, labels, CLASSES, CALIB, HW)
    assert torch.equal(boxes.tensor, before), 'the caller\'s boxes must not change'
    assert [n for n in names if _reference(BOXES[n]) is not None] == KEPT
    assert len(objects) == len(KEPT)
    for obj, name in zip(objects, KEPT):
        i, ref = names.index(name), _reference(BOXES[name])
        assert obj['type'] == CLASSES[int(labels[i])]
        assert obj['score'] == pytest.approx(float(scores[i]))
        np.testing.assert_allclose(obj['location'], ref['location'], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(obj['hwl'], ref['hwl'], atol=1e-5, err_msg=name)
        assert obj['rotation_y'] == pytest.approx(ref['rotation_y'], abs=1e-5), name
        assert obj['alpha'] == pytest.approx(ref['alpha'], abs=1e-5), name
        np.testing.assert_allclose(obj['bbox'], ref['bbox'], atol=1e-2, err_msg=name)
        kitti_io.format_label_line(obj)
    by_name = dict(zip(KEPT, objects))
    assert by_name['partly left of the image']['bbox'][0] == 0.0
    assert by_name['partly right of the image']['bbox'][2] == HW[1]
    assert -np.pi <= by_name['yaw past pi']['rotation_y'] < np.pi


def test_no_boxes_give_no_objects():
    from gemini_det3d.apis import lidar_boxes_to_kitti_objects
    objects = lidar_boxes_to_kitti_objects(_boxes([]), torch.zeros(0), torch.zeros(0),
                                           CLASSES, CALIB, HW)
    assert objects == []
