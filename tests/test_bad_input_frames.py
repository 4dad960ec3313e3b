"""Bad frames: an image whose size disagrees with its calibration stops with one line; a frame
without points gives an empty prediction (model, tools/test.py, tools/infer.py) and no loss."""
import copy
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

import gemini_det3d  # noqa: F401
from _configs import REPO, batch_from, load, retarget
from helpers.ground_truth_oracle import oracle_config, oracle_env
from helpers.synthetic_set import NUM_TEST, NUM_TRAIN, NUM_VAL
from gemini_det3d.data import kitti_io
from gemini_det3d.datasets.transforms.image_calib_check import (
    ImageCalibMismatchError, check_image_matches_calib, principal_point)

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
TINY_LIDAR_ONLY = 'configs/gemini_det3d/tiny/lidaronly-second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
EMPTY_VAL, FULL_VAL = '000005', '000004'  # val positions 1 and 0
EMPTY_TRAIN = '000001'  # train position 1

# KITTI's camera 2 on its five calibration days: P2's focal length, principal point, image size
KITTI_DAYS = {
    '2011_09_26': (721.5377, 609.5593, 172.8540, 375, 1242),
    '2011_09_28': (707.0493, 604.0814, 180.5066, 370, 1224),
    '2011_09_29': (718.3351, 600.3891, 181.5122, 374, 1238),
    '2011_09_30': (707.0912, 601.8873, 183.1104, 370, 1226),
    '2011_10_03': (718.8560, 607.1928, 185.2157, 376, 1241),
}


def run_tool(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)


def one_error_line(proc):
    """The single line a tool printed on stderr for bad input (warnings aside)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def kitti_lidar2img(focal, cx, cy, rng):
    """P2 (KITTI's form K [I | t]) @ R0_rect @ Tr_velo_to_cam with random rotations."""
    p2 = np.array([[focal, 0, cx, 44.86], [0, focal, cy, 0.216], [0, 0, 1, 0.0027]])
    r0 = np.eye(4)
    r0[:3, :3] = rotation(rng)
    tr = np.eye(4)
    tr[:3] = np.hstack([rotation(rng), [[-0.004], [-0.076], [-0.27]]])
    return np.vstack([p2, [0, 0, 0, 1]]) @ r0 @ tr


# ------------------------------------------------------------------- image vs calibration
def test_principal_point_is_recovered_from_lidar2img_for_any_pose_focal_and_skew():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cx, cy = rng.uniform(-500, 2000, 2)
        k = np.array([[rng.uniform(200, 2000), rng.uniform(-5, 5), cx],
                      [0, rng.uniform(200, 2000), cy], [0, 0, 1]])
        extrinsic = np.hstack([rotation(rng), rng.normal(size=(3, 1))])
        scale = rng.uniform(0.5, 3)  # a projection matrix is defined up to scale
        assert np.allclose(principal_point(scale * k @ extrinsic), (cx, cy), atol=1e-6)


@pytest.mark.parametrize('day', sorted(KITTI_DAYS))
def test_every_kitti_calibration_day_passes_and_a_rescaled_image_fails(day):
    focal, cx, cy, height, width = KITTI_DAYS[day]
    lidar2img = kitti_lidar2img(focal, cx, cy, np.random.default_rng(1))
    check_image_matches_calib(lidar2img, (height, width), f'{day}.png')
    for scale in (0.5, 0.8, 1.25, 2.0):
        hw = (round(height * scale), round(width * scale))
        with pytest.raises(ImageCalibMismatchError, match=f'{hw[1]}x{hw[0]}'):
            check_image_matches_calib(lidar2img, hw, f'{day}.png')


def test_every_synthetic_frame_passes(converted_synthetic_kitti):
    root = converted_synthetic_kitti
    checked = 0
    for split in ('training', 'testing'):
        for name in sorted(os.listdir(f'{root}{split}/calib')):
            frame = name[:-4]
            calib = kitti_io.read_calib(f'{root}{split}/calib/{frame}.txt')
            hw = kitti_io.check_image(f'{root}{split}/image_2/{frame}.png')
            check_image_matches_calib(kitti_io.lidar2img(calib), hw, frame)
            checked += 1
    assert checked == NUM_TRAIN + NUM_VAL + NUM_TEST


def _depth_image_results(root, frame, hw):
    """A raw LiDARToDepthImage input: frame's points and calib, an image of size hw."""
    from mmdet3d.structures import LiDARPoints
    calib = kitti_io.read_calib(f'{root}training/calib/{frame}.txt')
    points = kitti_io.read_velodyne(f'{root}training/velodyne/{frame}.bin')
    return dict(points=LiDARPoints(points, points_dim=4), img=np.zeros(hw + (3, ), np.uint8),
                lidar2img=kitti_io.lidar2img(calib), img_path=f'{root}training/image_2/{frame}.png')


def _depth_image_step(**kwargs):
    from mmdet3d.registry import TRANSFORMS
    return TRANSFORMS.build(dict(type='LiDARToDepthImage', **kwargs))


def test_depth_image_step_stops_on_a_half_size_image_naming_it(converted_synthetic_kitti):
    root = converted_synthetic_kitti
    results = _depth_image_results(root, FULL_VAL, (187, 621))
    cx, cy = principal_point(results['lidar2img'])
    with pytest.raises(ImageCalibMismatchError) as err:
        _depth_image_step()(results)
    message = str(err.value)
    assert '\n' not in message and message.startswith(results['img_path'])
    assert '621x187' in message and f'({cx:.1f}, {cy:.1f})' in message
    # the same frame at its own size projects its points; the check can be switched off
    full = _depth_image_step()(_depth_image_results(root, FULL_VAL, (375, 1242)))
    assert full['depth_img'][..., -1].sum() > 1000
    _depth_image_step(max_principal_point_offset=None)(
        _depth_image_results(root, FULL_VAL, (187, 621)))


def test_depth_image_step_stops_on_the_calibration_of_another_camera(converted_synthetic_kitti):
    """A KITTI image with a 1600 x 900 camera's intrinsics (principal point near (816, 492))."""
    root = converted_synthetic_kitti
    results = _depth_image_results(root, FULL_VAL, (375, 1242))
    calib = kitti_io.read_calib(f'{root}training/calib/{FULL_VAL}.txt')
    calib['P2'] = np.array([[1266.4, 0, 816.3, 0], [0, 1266.4, 491.5, 0], [0, 0, 1, 0]])
    results['lidar2img'] = kitti_io.lidar2img(calib)
    with pytest.raises(ImageCalibMismatchError, match=r'\(816\.3, 491\.5\)'):
        _depth_image_step()(results)


@pytest.fixture(scope='module')
def mismatched_image_set(converted_synthetic_kitti, tmp_path_factory):
    """The converted set with val frame FULL_VAL's image stored at half size."""
    import cv2
    root = str(tmp_path_factory.mktemp('kitti_half_image') / 'kitti') + '/'
    shutil.copytree(converted_synthetic_kitti, root)
    path = f'{root}training/image_2/{FULL_VAL}.png'
    image = cv2.imread(path)
    cv2.imwrite(path, cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    return root


@pytest.mark.slow
def test_test_tool_stops_with_one_line_on_a_mismatched_image(mismatched_image_set, tmp_path):
    """Through tools/test.py: the pipeline runs in a DataLoader worker (num_workers=1)."""
    root = mismatched_image_set
    config = oracle_config(os.path.join(REPO, TINY), tmp_path)  # the ground truth as model
    proc = subprocess.run([sys.executable, 'tools/test.py', config, '--work-dir', str(tmp_path),
                           '--cfg-options', f'test_dataloader.dataset.data_root={root}',
                           f'test_evaluator.ann_file={root}kitti_infos_val.pkl'],
                          cwd=REPO, capture_output=True, text=True, env=oracle_env())
    line = one_error_line(proc)
    assert f'training/image_2/{FULL_VAL}.png' in line and '621x187' in line


@pytest.mark.slow
@pytest.mark.parametrize('bad', ['half_size_image', 'other_camera_calib'])
def test_infer_stops_on_an_image_that_disagrees_with_its_calib(mismatched_image_set, tmp_path,
                                                               bad):
    root = mismatched_image_set
    image = f'{root}training/image_2/{FULL_VAL}.png'
    calib = f'{root}training/calib/{FULL_VAL}.txt'
    if bad == 'other_camera_calib':
        image = f'{root}training/image_2/{EMPTY_VAL}.png'  # a full-size image
        values = kitti_io.read_calib(calib)
        values['P2'] = np.array([[1266.4, 0, 816.3, 0], [0, 1266.4, 491.5, 0], [0, 0, 1, 0]])
        calib = str(kitti_io.write_calib(tmp_path / 'nuscenes_like.txt', values))
    # the checkpoint does not exist: the frame is checked before any model work
    proc = run_tool('tools/infer.py', TINY, str(tmp_path / 'unused.pth'),
                    '--velodyne', f'{root}training/velodyne/{FULL_VAL}.bin',
                    '--calib', calib, '--image', image)
    line = one_error_line(proc)
    assert image in line and calib in line and 'principal point' in line


# ------------------------------------------------------------------- frames without points
@pytest.fixture(scope='module')
def empty_frame_set(converted_synthetic_kitti, tmp_path_factory):
    """The converted set with 0-byte scans for val EMPTY_VAL, train EMPTY_TRAIN and test 000000
    (raw and reduced), as a LiDAR that returned nothing would leave them."""
    root = str(tmp_path_factory.mktemp('kitti_empty_scans') / 'kitti') + '/'
    shutil.copytree(converted_synthetic_kitti, root)
    for split, frame in (('training', EMPTY_VAL), ('training', EMPTY_TRAIN), ('testing', '000000')):
        for folder in ('velodyne', 'velodyne_reduced'):
            open(f'{root}{split}/{folder}/{frame}.bin', 'wb').close()
    return root


def _build_model(cfg):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    # PyTorch's default initialisation (not init_weights' focal-loss prior) so that a frame
    # with points does get boxes above the score threshold: an empty result then means something
    return MODELS.build(cfg.model)


def _samples(cfg, loader, count):
    """The first ``count`` samples of the loader's dataset (one dataset build)."""
    from mmdet3d.registry import DATASETS
    dataset = DATASETS.build(cfg[loader].dataset)
    return [dataset[i] for i in range(count)]


def _boxes(sample):
    pred = sample.pred_instances_3d
    return pred.bboxes_3d.tensor, pred.scores_3d, pred.labels_3d


@pytest.mark.parametrize('config', [TINY, TINY_LIDAR_ONLY])
def test_predict_gives_frames_without_points_an_empty_result(empty_frame_set, config):
    from mmdet3d.structures import LiDARInstance3DBoxes
    cfg = retarget(load(config), empty_frame_set)
    model = _build_model(cfg).eval()
    assert type(model).__name__ == 'GeminiMVXFasterRCNN'
    # The head's class-score maps show what the model computed for the frame with points.
    # (Its boxes cannot be compared: the initial weights tie many scores exactly, and NMS
    # then keeps any of the tied boxes.)
    head_maps = []
    model.pts_bbox_head.register_forward_hook(
        lambda module, args, out: head_maps.append(out[0][0].clone()))

    samples = {i: batch for i, batch in enumerate(_samples(cfg, 'val_dataloader', 2))}

    def predict(indices):
        batch = pseudo_collate([copy.deepcopy(samples[i]) for i in indices])
        assert [len(p) == 0 for p in batch['inputs']['points']] == [i == 1 for i in indices]
        head_maps.clear()
        with torch.no_grad():
            return model.test_step(batch)

    assert len(_boxes(predict((0, ))[0])[1]) > 0
    alone = head_maps[0]
    for indices in [(0, 1), (1, 0), (1, )]:
        out = predict(indices)
        for i, sample in zip(indices, out):
            if i == 1:  # the frame without points
                boxes, scores, labels = _boxes(sample)
                assert isinstance(sample.pred_instances_3d.bboxes_3d, LiDARInstance3DBoxes)
                assert boxes.shape == (0, 7) and scores.shape == (0, ) and labels.shape == (0, )
                assert labels.dtype == torch.long
            else:  # the frame with points: boxes, computed as if it were alone
                assert len(_boxes(sample)[1]) > 0
                assert len(head_maps) == 1 and head_maps[0].shape == alone.shape
                assert torch.allclose(head_maps[0], alone, atol=1e-5)
        if indices == (1, ):
            assert head_maps == []  # nothing to compute for a batch without points


def test_training_skips_frames_without_points(empty_frame_set):
    """A frame without points adds no loss: the head's loss sees only the frames with points;
    a batch of only such frames gives zero losses (and zero gradients) instead of a crash."""
    cfg = retarget(load(TINY), empty_frame_set)
    cfg.model.img_point_loss = None  # the head's losses only (that loss: its own test file)
    # and the camera evidence its classifier feeds (own test file), the head at SECOND's width
    cfg.model.bev_camera_evidence = None
    cfg.model.pts_bbox_head.update(in_channels=128, feat_channels=128)
    model = _build_model(cfg).train()
    head_loss_inputs = []  # (batch size of the head's features, gt boxes of its samples)
    head_loss = model.pts_bbox_head.loss

    def recording_head_loss(feats, samples, *args, **kwargs):
        head_loss_inputs.append(
            (feats[0].shape[0], [s.gt_instances_3d.bboxes_3d.tensor.clone() for s in samples]))
        return head_loss(feats, samples, *args, **kwargs)

    model.pts_bbox_head.loss = recording_head_loss

    def losses(indices):
        batch = batch_from(cfg, 'train_dataloader', indices)
        assert [len(p) == 0 for p in batch['inputs']['points']] == [i == 1 for i in indices]
        head_loss_inputs.clear()
        out = model(**model.data_preprocessor(batch, training=True), mode='loss')
        return batch, {k: sum(v) if isinstance(v, (list, tuple)) else v for k, v in out.items()}

    for indices in [(0, 1), (1, 0)]:
        batch, mixed = losses(indices)
        assert set(mixed) == {'loss_cls', 'loss_bbox', 'loss_dir'}
        assert all(torch.isfinite(v) and v > 0 for v in mixed.values()), mixed
        with_points = batch['data_samples'][indices.index(0)].gt_instances_3d.bboxes_3d.tensor
        assert len(head_loss_inputs) == 1
        head_batch, head_boxes = head_loss_inputs[0]
        assert head_batch == 1 and len(head_boxes) == 1
        assert torch.equal(head_boxes[0], with_points)
    _, only_empty = losses((1, ))
    assert set(only_empty) == {'loss_cls', 'loss_bbox', 'loss_dir'} and head_loss_inputs == []
    total = sum(only_empty.values())
    assert total.item() == 0.0
    total.backward()  # a zero gradient for every parameter: DDP and the optimiser go on
    assert all(p.grad is not None and not p.grad.any()
               for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope='module')
def tiny_checkpoint(empty_frame_set, tmp_path_factory):
    cfg = retarget(load(TINY), empty_frame_set)
    model = _build_model(cfg)
    path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': list(cfg.class_names)}}}, path)
    return str(path)


def _test_tool(root, checkpoint, work_dir, *extra):
    return run_tool('tools/test.py', TINY, checkpoint, '--work-dir', str(work_dir), *extra,
                    '--cfg-options', f'test_dataloader.dataset.data_root={root}',
                    f'test_evaluator.ann_file={root}kitti_infos_val.pkl')


@pytest.mark.slow
def test_test_tool_evaluates_a_val_split_with_a_frame_without_points(empty_frame_set,
                                                                   tiny_checkpoint, tmp_path):
    out = tmp_path / 'results.pkl'
    proc = _test_tool(empty_frame_set, tiny_checkpoint, tmp_path, '--out', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'metrics.json').is_file()
    with open(out, 'rb') as f:
        results = pickle.load(f)
    counts = [len(r['pred_instances_3d']['scores_3d']) for r in results]
    assert counts[1] == 0 and counts[0] > 0, counts  # EMPTY_VAL, FULL_VAL


@pytest.mark.slow
def test_test_tool_writes_an_empty_label_file_for_a_test_frame_without_points(
        empty_frame_set, tiny_checkpoint, tmp_path):
    submission = tmp_path / 'submission'
    proc = _test_tool(empty_frame_set, tiny_checkpoint, tmp_path, '--split', 'test',
                      '--submission-dir', str(submission))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(submission)) == ['000000.txt']
    assert (submission / '000000.txt').read_text() == ''


@pytest.mark.slow
def test_infer_writes_no_labels_for_a_frame_without_points(empty_frame_set, tiny_checkpoint,
                                                           tmp_path):
    root, out = empty_frame_set, tmp_path / 'pred.txt'
    proc = run_tool('tools/infer.py', TINY, tiny_checkpoint,
                    '--velodyne', f'{root}training/velodyne/{EMPTY_VAL}.bin',
                    '--calib', f'{root}training/calib/{EMPTY_VAL}.txt',
                    '--image', f'{root}training/image_2/{EMPTY_VAL}.png', '--out', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text() == ''


@pytest.mark.slow
def test_infer_calls_a_bin_of_a_partial_point_not_a_point_cloud(empty_frame_set, tmp_path):
    """One point and 4 stray bytes: a size that no float32 x y z r scan has."""
    bad = tmp_path / 'partial.bin'
    bad.write_bytes(np.ones(5, np.float32).tobytes())
    root = empty_frame_set
    proc = run_tool('tools/infer.py', TINY, str(tmp_path / 'unused.pth'), '--velodyne', str(bad),
                    '--calib', f'{root}training/calib/{FULL_VAL}.txt',
                    '--image', f'{root}training/image_2/{FULL_VAL}.png')
    line = one_error_line(proc)
    assert str(bad) in line and '16' in line
