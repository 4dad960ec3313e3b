"""The synthetic KITTI-layout generator: layout, determinism, and camera / LiDAR / label agreement.

The alignment checks go through the files and through mmdet3d's own code (its converter's
label parser, ``CameraInstance3DBoxes.convert_to`` with ``inv(lidar2cam)`` as ``KittiDataset``
does, and the numba ``points_in_rbbox`` its pipeline uses), so a convention mismatch between
the generator and mmdet3d (bottom vs. centre, h/w/l order, yaw sign) fails them.
"""
import filecmp
import importlib.util
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gemini_det3d.data import kitti_io
from gemini_det3d.data.synthetic_kitti import generate_frame, make_synthetic_kitti
from helpers.synthetic_set import NUM_TEST, NUM_TRAIN, NUM_VAL, SEED

ROOT = Path(__file__).resolve().parents[1]
H, W = kitti_io.KITTI_IMAGE_HW
LABELLED = ('Car', 'Pedestrian', 'Cyclist', 'Misc')


@pytest.fixture(scope='module')
def dataset(synthetic_kitti_source):
    """The session's generated set (``tests/conftest.py``): the generator's summary."""
    return synthetic_kitti_source.summary


def _mmdet3d_label_parser():
    """``get_label_anno`` of mmdet3d's KITTI converter (shipped under ``mmdet3d/.mim/tools``)."""
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', 'dataset_converters',
                    'kitti_data_utils.py')
    spec = importlib.util.spec_from_file_location('mmdet3d_kitti_data_utils', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_label_anno


def _frames_through_mmdet3d(root, frame_ids):
    """Per training frame: points (N, 4), lidar2img (4, 4), LiDAR boxes (M, 7) as mmdet3d
    builds them from label_2, the labels' names / 2D boxes / depths, and points-in-box (N, M)."""
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes
    from mmdet3d.structures.ops import box_np_ops
    get_label_anno = _mmdet3d_label_parser()
    frames = []
    for name in frame_ids:
        paths = kitti_io.kitti_frame_paths(root, 'training', name)
        points = kitti_io.read_velodyne(paths['velodyne'])
        calib = kitti_io.read_calib(paths['calib'])
        anno = get_label_anno(str(paths['label_2']))
        keep = np.isin(anno['name'], LABELLED)
        cam_boxes = np.concatenate([anno['location'], anno['dimensions'],
                                    anno['rotation_y'][:, None]], axis=1)[keep]
        lidar_boxes = CameraInstance3DBoxes(cam_boxes).convert_to(
            Box3DMode.LIDAR, np.linalg.inv(kitti_io.lidar2cam(calib))).tensor.numpy()
        inside = box_np_ops.points_in_rbbox(points[:, :3].astype(np.float64), lidar_boxes)
        frames.append(dict(points=points, calib=calib, lidar2img=kitti_io.lidar2img(calib),
                           lidar_boxes=lidar_boxes, inside=inside, name=anno['name'][keep],
                           bbox=anno['bbox'][keep], occluded=anno['occluded'][keep],
                           depth=anno['location'][keep, 2]))
    return frames


@pytest.fixture(scope='module')
def mmdet3d_frames(dataset):
    return _frames_through_mmdet3d(dataset['root'], dataset['frame_ids']['trainval'])


def _project(points, lidar2img):
    hom = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1) @ lidar2img.T
    depth = hom[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        return hom[:, 0] / depth, hom[:, 1] / depth, depth


def test_layout_is_complete_and_parses(dataset):
    root = dataset['root']
    expect = {'train': [f'{i:06d}' for i in range(NUM_TRAIN)],
              'val': [f'{i:06d}' for i in range(NUM_TRAIN, NUM_TRAIN + NUM_VAL)],
              'test': [f'{i:06d}' for i in range(NUM_TEST)]}
    expect['trainval'] = expect['train'] + expect['val']
    for split, ids in expect.items():
        assert kitti_io.read_imageset(root / 'ImageSets' / f'{split}.txt') == ids
    train = kitti_io.validate_kitti_split(root, 'training', expect['trainval'],
                                          expected_hw=(H, W), progress=False)
    test = kitti_io.validate_kitti_split(root, 'testing', expect['test'], with_label=False,
                                         expected_hw=(H, W), progress=False)
    assert not (root / 'testing' / 'label_2').exists()
    for folder in ('velodyne', 'image_2', 'calib', 'label_2'):
        assert len(list((root / 'training' / folder).iterdir())) == NUM_TRAIN + NUM_VAL
    # a 64-beam scan: about 100k points per frame, as KITTI's
    assert 70_000 < train['num_points'] / (NUM_TRAIN + NUM_VAL) < 130_000
    assert 70_000 < test['num_points'] / NUM_TEST < 130_000
    # every evaluated class present even in a tiny set (per-frame rates: test_synthetic_world.py)
    counts = train['num_objects']
    assert counts['Car'] >= 2 * (NUM_TRAIN + NUM_VAL)
    assert counts['Pedestrian'] >= 1 and counts['Cyclist'] >= 1
    # the images are real pictures, not blank
    import cv2
    image = cv2.imread(str(root / 'training' / 'image_2' / '000000.png'))
    assert image.shape == (H, W, 3) and image.std() > 20


def test_calibration_is_kitti_like_and_differs_per_frame(dataset):
    calibs = [kitti_io.read_calib(dataset['training'] / 'calib' / f'{n}.txt')
              for n in dataset['frame_ids']['trainval']]
    for calib in calibs:
        assert abs(calib['P2'][0, 0] - 721.5) < 15 and abs(calib['P2'][0, 2] - 609.6) < 10
        assert abs(calib['P2'][1, 2] - 172.9) < 10
        rect = calib['R0_rect']
        np.testing.assert_allclose(rect @ rect.T, np.eye(3), atol=1e-9)
        # LiDAR x forward -> camera z, y left -> -x, z up -> -y; LiDAR 0.27 m behind, 0.08 m above
        rotation, origin = calib['Tr_velo_to_cam'][:, :3], calib['Tr_velo_to_cam'][:, 3]
        np.testing.assert_allclose(rotation, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=0.03)
        np.testing.assert_allclose(origin, [0, -0.08, -0.27], atol=0.05)
    assert len({c['P2'].tobytes() for c in calibs}) == len(calibs)
    assert len({c['Tr_velo_to_cam'].tobytes() for c in calibs}) == len(calibs)


def test_same_seed_same_bytes(tmp_path):
    first = make_synthetic_kitti(tmp_path / 'a', 1, 1, 1, seed=11, progress=False)
    second = make_synthetic_kitti(tmp_path / 'b', 1, 1, 1, seed=11, progress=False, num_workers=2)
    other = make_synthetic_kitti(tmp_path / 'c', 1, 1, 1, seed=12, progress=False)
    files = sorted(p.relative_to(first['root']) for p in first['root'].rglob('*') if p.is_file())
    # 3 frames x (bin, png, calib), 2 labels, 4 ImageSets, the stamp (synthetic_stamp)
    assert len(files) == 3 * 3 + 2 + 4 + 1
    for rel in files:
        assert filecmp.cmp(first['root'] / rel, second['root'] / rel, shallow=False), rel
    differs = [not filecmp.cmp(first['root'] / rel, other['root'] / rel, shallow=False)
               for rel in files if 'ImageSets' not in str(rel)]
    assert all(differs)


def test_lidar_points_in_each_box_project_inside_its_2d_box(mmdet3d_frames):
    """>= 95 % of the in-image LiDAR points inside each labelled 3D box (as mmdet3d builds the
    box from label_2) project, through the calib file's lidar2img, into that label's 2D box."""
    fractions, weights = [], []
    for frame in mmdet3d_frames:
        u, v, depth = _project(frame['points'], frame['lidar2img'])
        in_image = (depth > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        for k, (x1, y1, x2, y2) in enumerate(frame['bbox']):
            mask = frame['inside'][:, k] & in_image
            if not mask.any():
                continue
            inside_2d = (u[mask] >= x1) & (u[mask] <= x2) & (v[mask] >= y1) & (v[mask] <= y2)
            fractions.append(inside_2d.mean())
            weights.append(mask.sum())
    fractions = np.array(fractions)
    assert len(fractions) >= 40 and np.sum(weights) > 5_000  # not vacuous (KITTI: ~6 labels a frame)
    print(f'\nalignment: {len(fractions)} objects, {np.sum(weights)} points; '
          f'min {fractions.min():.2%}, point-weighted {np.average(fractions, weights=weights):.3%}')
    assert fractions.min() >= 0.95


def _near_body(cam_points, obj, margin, clear_of_ground=0.0, ground=None):
    """(N,) which camera-frame points lie within ``margin`` metres of one of the object's
    primitives (and, if ``clear_of_ground`` > 0, at least that high above the ground under
    them: not ground hits)."""
    near = obj.near_surface(cam_points, margin)
    if clear_of_ground:
        near &= ground.height_at(cam_points[:, 0], cam_points[:, 2]) - cam_points[:, 1] >= clear_of_ground
    return near


def _on_ground(cam_points, ground, margin):
    return np.abs(ground.height_at(cam_points[:, 0], cam_points[:, 2]) - cam_points[:, 1]) <= margin


def test_mmdet3d_boxes_hold_the_generated_objects_points(dataset, mmdet3d_frames):
    """mmdet3d's reading of label_2 (camera boxes converted to LiDAR with inv(R0_rect @ Tr), as
    KittiDataset does) holds the points the generator's ray caster put on each object, and
    little else. A convention error (bottom vs. centre: ~0.8 m, h/w/l order or yaw sign: ~1 m)
    would lose most of them."""
    held, stray = [], []
    for index, frame in enumerate(mmdet3d_frames):
        truth = generate_frame(SEED, 'training', index)
        np.testing.assert_array_equal(truth['points'], frame['points'])
        cam = np.concatenate([frame['points'][:, :3], np.ones((len(frame['points']), 1))], 1)
        cam = (cam @ kitti_io.lidar2cam(frame['calib']).T)[:, :3]
        labelled = [o for o in truth['scene'].objects if o.label in LABELLED]
        ground = truth['scene'].ground
        for k in range(len(frame['lidar_boxes'])):
            # the generator's object whose bottom centre the label states
            obj = min(labelled, key=lambda o: np.abs(o.bottom_center - _cam_bottom(frame, k)).sum())
            on_body = _near_body(cam, obj, 0.04, 0.1, ground)  # 2 sigma of range noise
            if on_body.sum() < 10:
                continue
            held.append(frame['inside'][on_body, k].mean())
            # what else the box holds: the ground at its feet, nothing farther than 10 cm
            inside = frame['inside'][:, k]
            explained = _near_body(cam, obj, 0.1)[inside] | _on_ground(cam[inside], ground, 0.1)
            stray.append(1.0 - explained.mean())
    held, stray = np.array(held), np.array(stray)
    print(f'\nmmdet3d boxes: {len(held)} objects, object points held: min {held.min():.2%}, '
          f'mean {held.mean():.3%}; box points off the object: max {stray.max():.2%}')
    assert len(held) >= 30
    assert held.min() >= 0.9 and held.mean() >= 0.99 and stray.max() <= 0.02


def _cam_bottom(frame, k):
    """Bottom centre (3,) in the camera frame of mmdet3d's k-th LiDAR box."""
    box = frame['lidar_boxes'][k]
    bottom = np.append(box[:3], 1.0) @ kitti_io.lidar2cam(frame['calib']).T
    return bottom[:3]


def test_point_counts_fall_with_distance(mmdet3d_frames):
    depth, count, occluded = [], [], []
    for frame in mmdet3d_frames:
        is_car = frame['name'] == 'Car'
        depth += list(frame['depth'][is_car])
        count += list(frame['inside'][:, is_car].sum(0))
        occluded += list(frame['occluded'][is_car])
    depth, count, occluded = map(np.array, (depth, count, occluded))
    visible = occluded == 0
    near = count[visible & (depth < 20)]
    mid = count[visible & (depth >= 20) & (depth < 40)]
    far = count[visible & (depth >= 40)]
    assert len(near) and len(mid) and len(far)
    assert np.median(near) > 2 * np.median(mid) > 2 * np.median(far)
    assert np.median(far) < 150  # far cars: few points, yet labelled (the camera sees them)
    # every labelled car is in the image, even those the LiDAR barely hits
    assert (count < 20).any()


def test_camera_shows_the_object_where_the_lidar_hits_it():
    """Rendering and ray casting agree: the LiDAR points on an unoccluded object project onto
    pixels that the renderer filled with that object (objects with camera gaps, foliage and
    spoked wheels, are left out: there the camera sees through where the LiDAR returned)."""
    from gemini_det3d.data.synthetic_appearance import CAMERA_GAPS
    agree, total = 0, 0
    for index in range(3):
        frame = generate_frame(SEED, 'training', index)
        stats = frame['render_stats']
        u, v, depth = _project(frame['points'], kitti_io.lidar2img(frame['calib']))
        col, row = np.round(u).astype(int), np.round(v).astype(int)
        in_image = (depth > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        hom = np.concatenate([frame['points'][:, :3], np.ones((len(frame['points']), 1))], 1)
        cam = (hom @ kitti_io.lidar2cam(frame['calib']).T)[:, :3]
        for k, obj in enumerate(frame['scene'].objects):
            if stats.visible_pixels[k] < 0.95 * stats.full_pixels[k] or not stats.full_pixels[k]:
                continue
            if (CAMERA_GAPS[obj.parts.material] > 0).any():
                continue
            mask = _near_body(cam, obj, 0.03, 0.1, frame['scene'].ground) & in_image
            if mask.sum() < 20:
                continue
            same = stats.object_id[row[mask], col[mask]] == k
            assert same.mean() >= 0.85, (index, obj.kind, same.mean())
            agree += same.sum()
            total += mask.sum()
    assert total > 2000 and agree / total >= 0.97


def test_label_fields_follow_kitti_conventions(dataset):
    for name in dataset['frame_ids']['trainval']:
        objects = kitti_io.read_label(dataset['training'] / 'label_2' / f'{name}.txt')
        types = [o['type'] for o in objects]
        assert types == sorted(types, key=lambda t: t == 'DontCare')  # DontCare last
        for obj in objects:
            if obj['type'] == 'DontCare':
                continue
            x, y, z = obj['location']
            expected_alpha = (obj['rotation_y'] - np.arctan2(x, z) + np.pi) % (2 * np.pi) - np.pi
            assert abs((obj['alpha'] - expected_alpha + np.pi) % (2 * np.pi) - np.pi) < 0.02
            assert 0 <= obj['truncated'] <= 1 and obj['occluded'] in (0, 1, 2, 3)
            x1, y1, x2, y2 = obj['bbox']
            assert 0 <= x1 <= x2 <= W - 1 and 0 <= y1 <= y2 <= H - 1
            touches_border = x1 == 0 or y1 == 0 or x2 == W - 1 or y2 == H - 1
            assert (obj['truncated'] > 0) == touches_border or obj['truncated'] < 0.01
            assert 0.8 < y < 2.6 and 0.0 < z < 101  # standing on the sloped ground or a pavement, in front
            # closer than 4 m only when cut by the picture's edge (parked beside us, as in KITTI)
            assert z > 4.0 or obj['truncated'] > 0.3
            h, w, l = obj['hwl']
            if obj['type'] == 'Car':
                assert 1.2 < h < 2.1 and 1.3 < w < 2.0 and 2.9 < l < 5.4
            elif obj['type'] == 'Pedestrian':
                assert h > 1.3 and l < 1.4


@pytest.mark.slow
def test_command_line(tmp_path):
    script = ROOT / 'tools' / 'make_synthetic_kitti.py'
    out = tmp_path / 'kitti'
    done = subprocess.run([sys.executable, str(script), '--out-dir', str(out), '--num-train', '1',
                           '--num-val', '1', '--seed', '5'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kitti_io.read_imageset(out / 'ImageSets' / 'val.txt') == ['000001']
    assert kitti_io.read_imageset(out / 'ImageSets' / 'test.txt') == []
    kitti_io.validate_kitti_split(out, 'training', ['000000', '000001'], progress=False)
    bad = subprocess.run([sys.executable, str(script), '--out-dir', str(out), '--num-train', '-2',
                          '--num-val', '1'], capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.strip().count('\n') == 0 and 'num-train' in bad.stderr
