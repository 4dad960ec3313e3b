"""A real KITTI frame (tests/data/kitti_real, from mmdetection3d's test data) through the
user's path: converter, LiDAR image aligned with the RGB, a full-resolution training step of
the main config, tools/test.py's AP table and tools/visualize.py's pictures.

Every test works on a copy of the folder. The subprocess tests print their wall time and
peak resident memory (the process and its children, sampled every 0.1 s).
"""
import copy
import json
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / 'tests' / 'data' / 'kitti_real'
MAIN_CONFIG = REPO / ('configs/gemini_det3d/geminifusion-mvx_dual-swin-t-fpn_second-secfpn_'
                      '8xb2-40e_kitti-3d-3class.py')
# What mmdetection3d's own converter wrote for this frame (its tests/data/kitti/
# kitti_infos_train.pkl at the commit named in the README): the rebuilt files must agree.
MMDET3D_BBOX_3D = [1.84, 1.47, 8.41, 1.2, 1.89, 0.48, 0.01]  # camera frame, x y z l h w ry
MMDET3D_NUM_LIDAR_PTS = 377
MMDET3D_LIDAR2IMG = [[602.9436976111118, -707.9132863314612, -12.274842681831494,
                      -170.94272429706527],
                     [176.77725024402156, 8.80879965630006, -707.9361204188122,
                      -102.56863649623453],
                     [0.9999848008155823, -0.0015282672829926014, -0.005290712229907513,
                      -0.3275679897468414],
                     [0.0, 0.0, 0.0, 1.0]]
# The LiDAR image vs the label's 2D box (see test_lidar_image_aligned_with_rgb).
EDGE_MARGIN_PX = 3
MIN_FRACTION_INSIDE = 0.97
MIN_EXTENT_IOU = 0.8
# Settings that let the main config train on this copy, offline and in one step.
OFFLINE_IMAGE_INIT = ['model.img_backbone.init_cfg=None', 'load_from=None']


def run_measured(cmd, timeout=1200):
    """Run ``cmd``; returns (CompletedProcess, wall seconds, peak RSS bytes of the process
    and its children)."""
    import psutil
    started = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                rss = 0
                for p in [root] + root.children(recursive=True):
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss)
                time.sleep(0.1)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    sampler.join()
    seconds = time.perf_counter() - started
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), seconds, peak[0]


def report(what, seconds, peak):
    print(f'\n[real KITTI] {what}: {seconds:.1f} s, peak memory {peak / 1024 ** 3:.2f} GiB')


def _fail_message(done):
    return f'exit {done.returncode}\nstdout tail:\n{done.stdout[-3000:]}\nstderr tail:\n' \
           f'{done.stderr[-3000:]}'


def fresh_copy(dest: Path) -> Path:
    """The raw frame (no converter products) copied to ``dest``."""
    shutil.copytree(DATA, dest, ignore=shutil.ignore_patterns('*.md', '*.py'))
    return dest


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A copy of the frame converted by tools/create_data.py's converter (in this process)."""
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    root = fresh_copy(tmp_path_factory.mktemp('kitti_real') / 'kitti')
    create_kitti_data(root, root, 'kitti', progress=False)
    return root


def load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.mark.slow
def test_create_data_tool_converts_the_frame(tmp_path):
    root = fresh_copy(tmp_path / 'kitti')
    done, seconds, peak = run_measured(
        [sys.executable, 'tools/create_data.py', 'kitti', '--root-path', root, '--out-dir', root,
         '--extra-tag', 'kitti'], timeout=600)
    report('tools/create_data.py', seconds, peak)
    assert done.returncode == 0, _fail_message(done)
    (frame, ) = load(root / 'kitti_infos_train.pkl')['data_list']
    (inst, ) = frame['instances']
    np.testing.assert_allclose(inst['bbox_3d'], MMDET3D_BBOX_3D, atol=1e-5)
    assert inst['num_lidar_pts'] == MMDET3D_NUM_LIDAR_PTS
    for product in ('kitti_infos_val.pkl', 'kitti_dbinfos_train.pkl',
                    'training/velodyne_reduced/000000.bin'):
        assert (root / product).is_file(), product


def test_converter_reproduces_mmdet3d_infos(converted):
    root = converted
    # the frame is in both splits; trainval is their concatenation (as in mmdet3d)
    for split, count in (('train', 1), ('val', 1), ('trainval', 2)):
        frames = load(root / f'kitti_infos_{split}.pkl')['data_list']
        assert [f['lidar_points']['lidar_path'] for f in frames] == ['000000.bin'] * count
    info = load(root / 'kitti_infos_train.pkl')
    frame = info['data_list'][0]
    (inst, ) = frame['instances']
    categories = info['metainfo']['categories']
    assert inst['bbox_label_3d'] == categories['Pedestrian']
    np.testing.assert_allclose(inst['bbox_3d'], MMDET3D_BBOX_3D, atol=1e-5)
    assert inst['num_lidar_pts'] == MMDET3D_NUM_LIDAR_PTS
    np.testing.assert_allclose(frame['images']['CAM2']['lidar2img'], MMDET3D_LIDAR2IMG,
                               rtol=1e-5, atol=1e-4)
    assert (frame['images']['CAM2']['height'], frame['images']['CAM2']['width']) == (370, 1224)
    # the products training reads: FOV-reduced scan and the GT database with the pedestrian
    reduced = np.fromfile(root / 'training/velodyne_reduced/000000.bin', np.float32)
    assert 0 < reduced.size // 4 <= 1177 and reduced.size % 4 == 0
    (db, ) = load(root / 'kitti_dbinfos_train.pkl')['Pedestrian']
    assert db['num_points_in_gt'] == MMDET3D_NUM_LIDAR_PTS
    assert (root / db['path']).stat().st_size == 16 * MMDET3D_NUM_LIDAR_PTS


def _loaded_sample(root: Path):
    """The converted frame loaded as the main config's training data set loads it, up to (not
    including) LiDARToDepthImage; returns (results, that transform's config)."""
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules

    from gemini_det3d.utils.config import load_config
    register_all_modules(init_default_scope=True)
    cfg = load_config(str(MAIN_CONFIG))
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    pipeline = dataset_cfg.pipeline
    cut = next(i for i, t in enumerate(pipeline) if t['type'] == 'LiDARToDepthImage')
    dataset_cfg.update(data_root=str(root) + '/', pipeline=pipeline[:cut])
    dataset = DATASETS.build(dataset_cfg)
    return dataset[0], pipeline[cut]


def _box_iou(a, b):
    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_lidar_image_aligned_with_rgb(converted):
    """The LiDAR points inside each labelled 3D box, put into the LiDAR image by the main
    config's LiDARToDepthImage, land inside the label's 2D box (annotated on the RGB image).

    Two measures, because the points of a pedestrian fill its 2D box almost edge to edge:
    the fraction of their pixels inside the box (3 px margin), and the IoU of their pixel
    extent with the box. A projection shifted by 20 px in any direction fails at least one.
    """
    import torch
    from mmcv.ops import points_in_boxes_cpu

    from mmdet3d.registry import TRANSFORMS
    results, transform_cfg = _loaded_sample(converted)
    to_depth_image = TRANSFORMS.build(transform_cfg)
    mask_channel = list(transform_cfg.get('channels', to_depth_image.channels)).index('mask')
    points = results['points'].tensor
    boxes_3d = results['gt_bboxes_3d']  # LiDAR frame, bottom centre, as training sees them
    boxes_2d = np.asarray(results['ann_info']['gt_bboxes'])  # the label's 2D boxes (pixels)
    assert len(boxes_3d) == len(boxes_2d) == 1
    inside_3d = points_in_boxes_cpu(points[None, :, :3], boxes_3d.tensor[None, :, :7])[0]
    measured = 0
    for k in range(len(boxes_3d)):
        in_box = inside_3d[:, k].bool()
        if not in_box.any():
            continue
        sample = copy.copy(results)
        sample['points'] = results['points'][in_box]
        grid = to_depth_image.transform(sample)['depth_img']
        rows, cols = np.nonzero(grid[..., mask_channel] > 0)
        # pixel centres against the box edges
        u, v = cols + 0.5, rows + 0.5
        x1, y1, x2, y2 = boxes_2d[k]
        m = EDGE_MARGIN_PX
        inside = (u >= x1 - m) & (u <= x2 + m) & (v >= y1 - m) & (v <= y2 + m)
        extent = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        fraction, iou = float(inside.mean()), _box_iou(extent, boxes_2d[k])
        print(f'\n[real KITTI] object {k}: {int(in_box.sum())} points in the 3D box, '
              f'{len(rows)} pixels, {fraction:.3f} inside the 2D box (+-{m} px), extent IoU '
              f'{iou:.3f}')
        assert len(rows) >= 0.8 * int(in_box.sum()), 'points lost by the projection'
        assert fraction >= MIN_FRACTION_INSIDE, (k, fraction)
        assert iou >= MIN_EXTENT_IOU, (k, extent, boxes_2d[k], iou)
        measured += 1
    assert measured == 1, 'the labelled pedestrian has LiDAR points: it must be measured'
    assert torch.equal(results['points'].tensor, points)  # the sample itself is untouched


# ---------------------------------------------------------------------------------------------
# full resolution: train one step, test, visualise (CPU; slow)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def one_step_checkpoint(converted, tmp_path_factory):
    """tools/train.py, main config, one step (one frame, batch 1, one epoch, no validation)."""
    root = converted
    work_dir = tmp_path_factory.mktemp('real_train')
    done, seconds, peak = run_measured(
        [sys.executable, 'tools/train.py', MAIN_CONFIG, '--work-dir', work_dir, '--cfg-options',
         f'train_dataloader.dataset.dataset.data_root={root}/',
         'train_dataloader.dataset.times=1', 'train_dataloader.batch_size=1',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
         # a fixed seed: the same augmentation draw (and so the same image size, which sets
         # the step's time and memory) in every run
         'randomness.seed=0', 'default_hooks.logger.interval=1', *OFFLINE_IMAGE_INIT])
    return work_dir, done, seconds, peak


def _cfg_options_for_test(root):
    return [f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/kitti_infos_val.pkl',
            f'test_evaluator.ann_file={root}/kitti_infos_val.pkl',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            *OFFLINE_IMAGE_INIT]


@pytest.mark.slow
def test_main_config_trains_one_step_at_full_resolution(one_step_checkpoint):
    work_dir, done, seconds, peak = one_step_checkpoint
    report('tools/train.py, main config, 1 step, batch 1, full resolution', seconds, peak)
    assert done.returncode == 0, _fail_message(done)
    assert (work_dir / 'epoch_1.pth').is_file()
    scalars = [json.loads(line) for path in work_dir.glob('*/vis_data/scalars.json')
               for line in path.read_text().splitlines()]
    losses = [s for s in scalars if 'loss' in s]
    assert len(losses) == 1 and np.isfinite(losses[0]['loss']), scalars
    print(f'[real KITTI] the step itself: {losses[0].get("time", float("nan")):.1f} s '
          f'(data {losses[0].get("data_time", float("nan")):.1f} s), loss {losses[0]["loss"]:.3f}')


@pytest.mark.slow
def test_test_tool_prints_kitti_ap_table(converted, one_step_checkpoint, tmp_path):
    root = converted
    checkpoint = one_step_checkpoint[0] / 'epoch_1.pth'
    if not checkpoint.is_file():
        pytest.fail('no checkpoint: the training step failed (see its test)')
    done, seconds, peak = run_measured(
        [sys.executable, 'tools/test.py', MAIN_CONFIG, checkpoint, '--work-dir', tmp_path,
         '--cfg-options', *_cfg_options_for_test(root)])
    report('tools/test.py on the one-step checkpoint', seconds, peak)
    assert done.returncode == 0, _fail_message(done)
    output = done.stdout + done.stderr
    for line in ('Pedestrian AP11@0.50, 0.50, 0.50:', 'bev  AP11:', '3d   AP40:'):
        assert line in output, line
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    keys = [k for k in metrics if 'Pedestrian_3D_AP40_moderate' in k]
    assert keys and all(0.0 <= metrics[k] <= 100.0 for k in keys), metrics


@pytest.mark.slow
def test_visualize_tool_writes_pictures(converted, one_step_checkpoint, tmp_path):
    root = converted
    checkpoint = one_step_checkpoint[0] / 'epoch_1.pth'
    if not checkpoint.is_file():
        pytest.fail('no checkpoint: the training step failed (see its test)')
    out = tmp_path / 'pictures'
    done, seconds, peak = run_measured(
        [sys.executable, 'tools/visualize.py', MAIN_CONFIG, '--split', 'val', '--checkpoint',
         checkpoint, '--out-dir', out, '--no-progress', '--cfg-options',
         *_cfg_options_for_test(root)])
    report('tools/visualize.py with the one-step checkpoint', seconds, peak)
    assert done.returncode == 0, _fail_message(done)
    for view in ('bev', 'chase', 'camera'):
        picture = out / f'000000_{view}.png'
        assert picture.is_file(), sorted(p.name for p in out.iterdir())
        import cv2
        image = cv2.imread(str(picture))
        assert image is not None and image.std() > 1.0, f'{picture} is blank'
