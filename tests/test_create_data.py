"""tools/create_data.py: mmdet3d's KITTI converter behind strict validation and atomic output.

The good tree is the suite's one synthetic set (``tests/conftest.py``); the failure cases
break private copies of it.
"""
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gemini_det3d.data.errors import KittiFormatError
from helpers.synthetic_set import NUM_TEST, NUM_TRAIN, NUM_VAL

REPO = Path(__file__).resolve().parents[1]
PRODUCTS = ('kitti_infos_train.pkl', 'kitti_infos_val.pkl', 'kitti_infos_trainval.pkl',
            'kitti_infos_test.pkl', 'kitti_dbinfos_train.pkl', 'kitti_gt_database',
            'training/velodyne_reduced', 'testing/velodyne_reduced')


@pytest.fixture
def converted_mini_kitti(converted_synthetic_kitti):
    """The session's converted set (``tests/conftest.py``), as a Path."""
    return Path(converted_synthetic_kitti)


@pytest.fixture
def fresh_copy(synthetic_kitti_source, tmp_path):
    """A private copy of the session's generated (unconverted) tree, free to break."""
    root = tmp_path / 'kitti'
    shutil.copytree(synthetic_kitti_source.root, root)
    return root


def run_tool(root: Path, out_dir: Path = None):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'create_data.py'), 'kitti', '--root-path',
         str(root), '--out-dir', str(out_dir or root), '--extra-tag', 'kitti'],
        capture_output=True, text=True, cwd=REPO, timeout=600)


def assert_nothing_written(root: Path):
    for rel in PRODUCTS:
        assert not (root / rel).exists(), f'{rel} written despite the error'
    assert not list(root.glob('.create_data-*')), 'staging folder left behind'


def load(path: Path):
    with open(path, 'rb') as f:
        return pickle.load(f)


# ---------------------------------------------------------------------------------------------
# A good tree
# ---------------------------------------------------------------------------------------------
def test_writes_v2_infos_reduced_scans_and_gt_database(converted_mini_kitti):
    from gemini_det3d.data import kitti_io
    root = converted_mini_kitti
    for rel in PRODUCTS:
        assert (root / rel).exists(), rel
    assert not list(root.glob('.create_data-*'))
    sizes = dict(train=NUM_TRAIN, val=NUM_VAL, trainval=NUM_TRAIN + NUM_VAL, test=NUM_TEST)
    for split, size in sizes.items():
        infos = load(root / f'kitti_infos_{split}.pkl')
        assert infos['metainfo']['info_version'] == '1.1'  # mmdet3d 1.x (v2) format
        assert len(infos['data_list']) == size
    train = load(root / 'kitti_infos_train.pkl')['data_list']
    names = kitti_io.read_imageset(root / 'ImageSets' / 'train.txt')
    assert [info['lidar_points']['lidar_path'] for info in train] == [f'{n}.bin' for n in names]
    # Labels went through: every labelled object of a training frame is an instance.
    for info in train:
        frame = info['lidar_points']['lidar_path'][:-4]
        objects = kitti_io.read_label(root / 'training' / 'label_2' / f'{frame}.txt')
        assert len(info['instances']) == len(objects)
        calib = kitti_io.read_calib(root / 'training' / 'calib' / f'{frame}.txt')
        np.testing.assert_allclose(info['images']['CAM2']['lidar2img'],
                                   kitti_io.lidar2img(calib), rtol=1e-5, atol=1e-4)
    # Reduced scans: the raw points that project into camera 2's image, nothing else.
    for info in train:
        frame = info['lidar_points']['lidar_path']
        raw = kitti_io.read_velodyne(root / 'training' / 'velodyne' / frame)
        reduced = np.fromfile(root / 'training' / 'velodyne_reduced' / frame,
                              dtype=np.float32).reshape(-1, 4)
        assert 0 < len(reduced) < len(raw)
        lidar2img = np.array(info['images']['CAM2']['lidar2img'])
        cam = reduced[:, :3] @ lidar2img[:3, :3].T + lidar2img[:3, 3]
        u, v = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        h, w = info['images']['CAM2']['height'], info['images']['CAM2']['width']
        inside = (cam[:, 2] > 0) & (u >= -1) & (u <= w + 1) & (v >= -1) & (v <= h + 1)
        assert inside.mean() > 0.99
    db = load(root / 'kitti_dbinfos_train.pkl')
    assert sum(len(v) for v in db.values()) > 0
    for entries in db.values():
        for entry in entries[:3]:
            assert (root / entry['path']).is_file()


def test_every_split_lists_dontcare_among_its_categories(converted_mini_kitti):
    # KittiMetric maps each instance's label back to a name through metainfo['categories'];
    # mmdet3d's updater lists -1 (DontCare) only when the split's last frame has one.
    from gemini_det3d.data import kitti_io
    root = converted_mini_kitti
    seen_dontcare = 0
    for split in ('train', 'val', 'trainval'):
        infos = load(root / f'kitti_infos_{split}.pkl')
        categories = infos['metainfo']['categories']
        label2cat = {label: name for name, label in categories.items()}
        for info in infos['data_list']:
            frame = info['lidar_points']['lidar_path'][:-4]
            objects = kitti_io.read_label(root / 'training' / 'label_2' / f'{frame}.txt')
            for instance, obj in zip(info['instances'], objects):
                assert instance['bbox_label'] in label2cat, (split, frame, obj['type'])
                assert label2cat[instance['bbox_label']] == obj['type'] or instance['bbox_label'] == -1
                seen_dontcare += obj['type'] == 'DontCare'
        if any(i['bbox_label'] == -1 for info in infos['data_list'] for i in info['instances']):
            assert categories.get('DontCare') == -1, split
    assert seen_dontcare > 0, 'the generated set should have DontCare boxes to check'


def test_missing_test_split_is_skipped_with_a_note(fresh_copy, capsys):
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    (fresh_copy / 'ImageSets' / 'test.txt').unlink()
    shutil.rmtree(fresh_copy / 'testing')
    create_kitti_data(fresh_copy, fresh_copy, 'kitti', progress=False)
    assert 'skipping the test split' in capsys.readouterr().out
    assert (fresh_copy / 'kitti_infos_trainval.pkl').is_file()
    assert not (fresh_copy / 'kitti_infos_test.pkl').exists()
    assert not (fresh_copy / 'testing').exists()


def test_failure_inside_conversion_leaves_previous_output_intact(fresh_copy, monkeypatch):
    """Products of an earlier run survive a later run that fails half way."""
    from gemini_det3d.datasets import kitti_converter
    kitti_converter.create_kitti_data(fresh_copy, fresh_copy, 'kitti', progress=False)
    before = {rel: (fresh_copy / rel).read_bytes() for rel in PRODUCTS if rel.endswith('.pkl')}
    reduced_before = sorted(p.name for p in (fresh_copy / 'training/velodyne_reduced').iterdir())

    def broken_gt_database(*args, **kwargs):
        raise RuntimeError('disk full')

    tools = kitti_converter.mmdet3d_converter_modules()
    monkeypatch.setattr(tools.create_gt_database, 'create_groundtruth_database',
                        broken_gt_database)
    with pytest.raises(RuntimeError, match='disk full'):
        kitti_converter.create_kitti_data(fresh_copy, fresh_copy, 'kitti', progress=False)
    for rel, data in before.items():
        assert (fresh_copy / rel).read_bytes() == data, rel
    assert sorted(p.name for p in (fresh_copy / 'training/velodyne_reduced').iterdir()) == \
        reduced_before
    assert not list(fresh_copy.glob('.create_data-*'))


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the file, non-zero exit, nothing written
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_missing_split_file(fresh_copy):
    (fresh_copy / 'ImageSets' / 'val.txt').unlink()
    result = run_tool(fresh_copy)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(fresh_copy / 'ImageSets' / 'val.txt') in lines[0]
    assert 'split file missing' in lines[0]
    assert 'Traceback' not in result.stderr + result.stdout
    assert_nothing_written(fresh_copy)


@pytest.mark.slow
def test_cli_truncated_scan(fresh_copy):
    scan = fresh_copy / 'training' / 'velodyne' / '000001.bin'
    data = scan.read_bytes()
    scan.write_bytes(data[:len(data) - 6])
    result = run_tool(fresh_copy)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(scan) in lines[0] and 'not a multiple of 16' in lines[0]
    assert 'Traceback' not in result.stderr + result.stdout
    assert_nothing_written(fresh_copy)


def _drop_calib_key(root):
    path = root / 'training' / 'calib' / '000002.txt'
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(''.join(line for line in lines if not line.startswith('Tr_imu_to_velo')))
    return path, 'Tr_imu_to_velo'


def _nan_point(root):
    path = root / 'training' / 'velodyne' / '000003.bin'
    points = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    points[10, 1] = np.nan
    points.tofile(path)
    return path, 'NaN'


def _missing_frame_file(root):
    path = root / 'training' / 'calib' / '000004.txt'
    path.unlink()
    return path, 'not found'


def _missing_image(root):
    path = root / 'testing' / 'image_2' / '000000.png'
    path.unlink()
    return path, 'not found'


def _wrong_field_count(root):
    path = root / 'training' / 'label_2' / '000000.txt'
    lines = path.read_text().splitlines()
    lines[0] = lines[0].rsplit(' ', 1)[0]  # drop rotation_y
    path.write_text('\n'.join(lines) + '\n')
    return path, '14 fields'


def _unknown_class(root):
    path = root / 'training' / 'label_2' / '000001.txt'
    lines = path.read_text().splitlines()
    lines[0] = 'Spaceship ' + lines[0].split(' ', 1)[1]
    path.write_text('\n'.join(lines) + '\n')
    return path, 'Spaceship'


def _missing_split_folder(root):
    path = root / 'testing' / 'velodyne'
    shutil.rmtree(path)
    return path, 'not found'


@pytest.mark.parametrize('damage', [_drop_calib_key, _nan_point, _missing_frame_file,
                                    _missing_image, _wrong_field_count, _unknown_class,
                                    _missing_split_folder])
def test_bad_input_gives_one_line_naming_the_file(fresh_copy, damage):
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    path, problem = damage(fresh_copy)
    with pytest.raises(KittiFormatError) as info:
        create_kitti_data(fresh_copy, fresh_copy, 'kitti', progress=False)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(str(path)), message
    assert problem in message
    assert_nothing_written(fresh_copy)


def test_duplicate_frame_in_split(fresh_copy):
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    path = fresh_copy / 'ImageSets' / 'train.txt'
    path.write_text(path.read_text() + '000000\n')
    with pytest.raises(KittiFormatError, match='000000 listed twice'):
        create_kitti_data(fresh_copy, fresh_copy, 'kitti', progress=False)
    assert_nothing_written(fresh_copy)
