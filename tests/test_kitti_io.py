"""Strict KITTI readers / writers: round trips, agreement with mmdet3d, and one-line errors."""
import importlib.util
import os.path as osp
import shutil

import numpy as np
import pytest

from gemini_det3d.data import kitti_io
from gemini_det3d.data.errors import KittiFormatError

GOOD_LABEL = ('Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n'
              'Pedestrian 0.00 1 0.21 423.17 173.67 433.17 224.03 1.60 0.38 0.30 -5.87 1.63 23.11 -0.03\n'
              'DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n')


@pytest.fixture
def frame(synthetic_kitti_source, tmp_path):
    """A private KITTI tree holding a copy of the session set's training frame 000000, free to
    damage, and that frame's file paths."""
    source = kitti_io.kitti_frame_paths(synthetic_kitti_source.root, 'training', 0)
    root = tmp_path / 'kitti'
    paths = kitti_io.kitti_frame_paths(root, 'training', 0)
    for kind, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source[kind], path)
    return root, paths


def _mmdet3d_converter_utils():
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', 'dataset_converters',
                    'kitti_data_utils.py')
    spec = importlib.util.spec_from_file_location('mmdet3d_kitti_data_utils', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expect_error(call, path, *words):
    """The call raises KittiFormatError: one line, starting with the file's path, with words."""
    with pytest.raises(KittiFormatError) as info:
        call()
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(str(path) + ': '), message
    for word in words:
        assert word in message, message
    assert isinstance(info.value, ValueError)
    return message


# --------------------------------------------------------------------------------------------
# round trips and agreement with mmdet3d
# --------------------------------------------------------------------------------------------
def test_velodyne_round_trip(tmp_path):
    points = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    path = kitti_io.write_velodyne(tmp_path / 'a.bin', points)
    assert path.stat().st_size == 16 * 1000
    np.testing.assert_array_equal(kitti_io.read_velodyne(path), points)
    assert not list(tmp_path.glob('.*tmp*'))  # written through a temporary name, then renamed


def test_calib_matches_mmdet3d_converter(frame):
    """Our calib files are what mmdet3d's converter parses, and lidar2img is its formula."""
    root, paths = frame
    ours = kitti_io.read_calib(paths['calib'])
    info = _mmdet3d_converter_utils().get_kitti_image_info(
        str(root), training=True, label_info=False, velodyne=True, calib=True, image_ids=[0],
        extend_matrix=True, relative_path=True, num_worker=1)[0]
    for key in kitti_io.CALIB_KEYS:
        np.testing.assert_array_equal(info['calib'][key][:3, :ours[key].shape[1]], ours[key])
    expected = info['calib']['P2'] @ info['calib']['R0_rect'] @ info['calib']['Tr_velo_to_cam']
    np.testing.assert_allclose(kitti_io.lidar2img(ours), expected, rtol=1e-12)
    np.testing.assert_allclose(kitti_io.lidar2cam(ours),
                               info['calib']['R0_rect'] @ info['calib']['Tr_velo_to_cam'])
    assert tuple(info['image']['image_shape']) == kitti_io.KITTI_IMAGE_HW
    # write -> read is exact
    again = kitti_io.read_calib(kitti_io.write_calib(root / 'again.txt', ours))
    for key in kitti_io.CALIB_KEYS:
        np.testing.assert_array_equal(again[key], ours[key])


def test_lidar2img_projects_like_mmdet3d(frame):
    from mmdet3d.structures import points_cam2img
    _, paths = frame
    calib = kitti_io.read_calib(paths['calib'])
    points = kitti_io.read_velodyne(paths['velodyne'])[:, :3].astype(np.float64)
    cam = np.c_[points, np.ones(len(points))] @ kitti_io.lidar2cam(calib).T
    front = cam[:, 2] > 1
    expected = points_cam2img(cam[front, :3], np.vstack([calib['P2'], [0, 0, 0, 1]]))
    hom = np.c_[points[front], np.ones(front.sum())] @ kitti_io.lidar2img(calib).T
    np.testing.assert_allclose(hom[:, :2] / hom[:, 2:3], expected, atol=0.02)  # mmdet3d: float32


def test_label_round_trip_and_mmdet3d_parse(tmp_path):
    path = tmp_path / 'label.txt'
    path.write_text(GOOD_LABEL)
    objects = kitti_io.read_label(path)
    assert [o['type'] for o in objects] == ['Car', 'Pedestrian', 'DontCare']
    car = objects[0]
    np.testing.assert_array_equal(car['hwl'], [1.65, 1.67, 3.64])
    np.testing.assert_array_equal(car['location'], [-0.65, 1.71, 46.70])
    assert car['occluded'] == 0 and car['rotation_y'] == -1.59 and 'score' not in car
    written = kitti_io.write_label(tmp_path / 'again.txt', [objects[2], objects[0], objects[1]])
    assert written.read_text() == GOOD_LABEL  # KITTI's number formats, DontCare last
    anno = _mmdet3d_converter_utils().get_label_anno(str(written))
    np.testing.assert_array_equal(anno['dimensions'][0], [3.64, 1.65, 1.67])  # mmdet3d: l h w
    assert anno['index'].tolist() == [0, 1, -1]
    scored = dict(car, score=0.875)
    assert kitti_io.read_label(kitti_io.write_label(tmp_path / 's.txt', [scored]))[0]['score'] == 0.875


def test_empty_label_file_is_valid(tmp_path):
    path = tmp_path / 'empty.txt'
    path.write_text('')
    assert kitti_io.read_label(path) == []


def test_check_image_reads_png_header(frame):
    _, paths = frame
    assert kitti_io.check_image(paths['image_2']) == kitti_io.KITTI_IMAGE_HW
    assert kitti_io.check_image(paths['image_2'], decode=True) == kitti_io.KITTI_IMAGE_HW


def test_validate_split_counts(frame):
    root, _ = frame
    summary = kitti_io.validate_kitti_split(root, 'training', ['000000'], progress=True)
    assert summary['num_frames'] == 1 and summary['num_points'] > 50_000
    assert summary['num_objects']['Car'] >= 1


# --------------------------------------------------------------------------------------------
# bad input: one line naming the file and the problem
# --------------------------------------------------------------------------------------------
def test_bin_not_multiple_of_16(frame):
    _, paths = frame
    path = paths['velodyne']
    with open(path, 'ab') as f:
        f.write(b'\x00' * 7)
    _expect_error(lambda: kitti_io.read_velodyne(path), path, 'not a multiple of 16')


def test_bin_with_nan_point(tmp_path):
    points = np.ones((50, 4), np.float32)
    points[17, 1] = np.nan
    points[30, 3] = np.inf
    path = kitti_io.write_velodyne(tmp_path / '000000.bin', points)
    _expect_error(lambda: kitti_io.read_velodyne(path), path, '2 of 50 points', 'NaN', 'row 17')


def test_bin_missing_or_empty(tmp_path):
    missing = tmp_path / 'none.bin'
    _expect_error(lambda: kitti_io.read_velodyne(missing), missing, 'not found')
    empty = tmp_path / 'empty.bin'  # a scan without points is valid: an empty prediction
    empty.write_bytes(b'')
    points = kitti_io.read_velodyne(empty)
    assert points.shape == (0, 4) and points.dtype == np.float32


def _edit_calib(path, edit):
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(edit(lines)) + '\n')


def test_calib_missing_key(frame):
    _, paths = frame
    path = paths['calib']
    _edit_calib(path, lambda lines: [l for l in lines if not l.startswith('R0_rect')])
    _expect_error(lambda: kitti_io.read_calib(path), path, "missing calib key 'R0_rect'")


def test_calib_wrong_number_count(frame):
    _, paths = frame
    path = paths['calib']
    _edit_calib(path, lambda lines: [l.rsplit(' ', 1)[0] if l.startswith('P2') else l for l in lines])
    _expect_error(lambda: kitti_io.read_calib(path), path, 'P2', '11 numbers, expected 12')


def test_calib_bad_number_and_order(frame):
    _, paths = frame
    path = paths['calib']
    original = path.read_text()
    _edit_calib(path, lambda lines: [l.replace('e+02', 'x+02', 1) if l.startswith('P1') else l
                                     for l in lines])
    _expect_error(lambda: kitti_io.read_calib(path), path, 'P1', 'is not a number')
    path.write_text(original)
    _edit_calib(path, lambda lines: [lines[1], lines[0]] + lines[2:])  # P1 before P0
    _expect_error(lambda: kitti_io.read_calib(path), path, "must hold 'P0'", 'by position')


def test_missing_image(frame):
    root, paths = frame
    paths['image_2'].unlink()
    _expect_error(lambda: kitti_io.check_image(paths['image_2']), paths['image_2'], 'image file not found')
    _expect_error(lambda: kitti_io.validate_kitti_split(root, 'training', [0], progress=False),
                  paths['image_2'], 'not found')


def test_truncated_or_wrong_size_image(frame):
    _, paths = frame
    path = paths['image_2']
    assert kitti_io.check_image(path, expected_hw=(375, 1242))
    _expect_error(lambda: kitti_io.check_image(path, expected_hw=(370, 1224)), path, '375x1242',
                  'expected 370x1224')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    _expect_error(lambda: kitti_io.check_image(path), path, 'truncated')
    _expect_error(lambda: kitti_io.check_image(path, decode=True), path, 'not a readable image')


def test_png_damaged_where_a_header_check_cannot_see(frame):
    """Pixel data intact but the IEND checksum cut off (OpenCV refuses it), and one flipped
    byte inside the pixel data (the chunk's checksum no longer matches)."""
    import cv2
    _, paths = frame
    path = paths['image_2']
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    assert cv2.imread(str(path)) is None
    _expect_error(lambda: kitti_io.check_image(path), path, 'truncated')
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(middle))
    _expect_error(lambda: kitti_io.check_image(path), path, 'PNG is truncated or corrupt')
    path.write_text('not an image at all')
    _expect_error(lambda: kitti_io.check_image(path), path, 'not a readable image')


def test_label_wrong_field_count(tmp_path):
    path = tmp_path / '000000.txt'
    lines = GOOD_LABEL.splitlines()
    lines[1] = lines[1].rsplit(' ', 1)[0]
    path.write_text('\n'.join(lines) + '\n')
    _expect_error(lambda: kitti_io.read_label(path), path, 'line 2', '14 fields, expected 15')


def test_label_unknown_class(tmp_path):
    path = tmp_path / '000000.txt'
    path.write_text(GOOD_LABEL.replace('Pedestrian', 'Bus'))
    _expect_error(lambda: kitti_io.read_label(path), path, 'line 2', "unknown class name 'Bus'")


@pytest.mark.parametrize('text, words', [
    (GOOD_LABEL.replace('Car 0.00', 'Car  0.00'), ['line 1', 'single spaces']),
    (GOOD_LABEL.replace('Car 0.00', 'Car\t0.00'), ['line 1', 'single spaces']),
    (GOOD_LABEL + '\n', ['line 4', 'blank']),
    (GOOD_LABEL.splitlines()[2] + '\n' + GOOD_LABEL.splitlines()[0] + '\n', ['line 2', 'DontCare']),
    (GOOD_LABEL.replace('Car 0.00 0', 'Car 0.00 0.5'), ['line 1', 'occluded', 'not an integer']),
    (GOOD_LABEL.replace('46.70', 'nan'), ['line 1', 'NaN']),
    (GOOD_LABEL.replace('-1.58 587.01', '-1.58 700.00'), ['line 1', 'x2 < x1']),
    (GOOD_LABEL.replace(' 1.65 1.67 3.64', ' 1.65 -1.67 3.64'), ['line 1', 'must be > 0']),
    (GOOD_LABEL.replace(' -1.59\n', ' -1.59 0.9\n', 1), ['line 2', '15 fields but line 1 has 16']),
])
def test_label_other_damage(tmp_path, text, words):
    path = tmp_path / '000000.txt'
    path.write_text(text)
    _expect_error(lambda: kitti_io.read_label(path), path, *words)


def test_validate_split_names_missing_parts(frame):
    root, paths = frame
    (root / 'training' / 'label_2' / '000000.txt').rename(root / 'training' / 'label_2' / 'x.txt')
    _expect_error(lambda: kitti_io.validate_kitti_split(root, 'training', ['000000'], progress=False),
                  paths['label_2'], 'label file not found')
    kitti_io.validate_kitti_split(root, 'training', ['000000'], with_label=False, progress=False)
    shutil.rmtree(root / 'training' / 'calib')
    _expect_error(lambda: kitti_io.validate_kitti_split(root, 'training', ['000000'], progress=False),
                  root / 'training' / 'calib', 'directory not found')


def test_imageset_bad_id(tmp_path):
    path = tmp_path / 'train.txt'
    path.write_text('000001\n12a\n')
    _expect_error(lambda: kitti_io.read_imageset(path), path, 'line 2', 'not a 6-digit frame id')


def test_cli_reports_an_input_error_from_a_data_loader_worker_in_one_line(tmp_path, capsys):
    """torch re-raises a worker's KittiFormatError as a RuntimeError carrying the worker's
    traceback; the tools still print one line and exit 2. Other errors propagate."""
    import pytest
    import torch
    from torch.utils.data import DataLoader

    from gemini_det3d.utils.cli import run_cli

    class Scans(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return kitti_io.read_velodyne(tmp_path / 'broken.bin')

    (tmp_path / 'broken.bin').write_bytes(b'12345')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: list(DataLoader(Scans(), num_workers=1)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    assert 'broken.bin' in err and 'multiple of 16' in err and 'Traceback' not in err
    with pytest.raises(RuntimeError, match='not an input error'):
        run_cli(lambda argv: (_ for _ in ()).throw(RuntimeError('not an input error')))
