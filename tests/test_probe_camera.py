"""tools/probe_camera.py and its transforms: SwapCameraImage and BlankCameraImage change the
camera picture and nothing else; the probe shows a fused model's predictions move with the
picture and a LiDAR-only model's do not."""
import copy
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

from helpers.scripts import REPO, load_script
TINY = 'configs/gemini_det3d/tiny/'
GEMINI = TINY + 'geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
LIDAR_ONLY = TINY + 'lidaronly-second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


def _probe_module():
    return load_script('tools/probe_camera.py', name='gemini_probe_camera')


def _val_dataset(root, pipeline_edit=None):
    """The tiny config's val dataset on ``root``, its test pipeline edited by ``pipeline_edit``."""
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules

    from gemini_det3d.utils.config import load_config
    register_all_modules(init_default_scope=True)
    cfg = load_config(osp.join(REPO, GEMINI))
    ds = copy.deepcopy(cfg.test_dataloader.dataset)
    ds.data_root = root
    if pipeline_edit is not None:
        ds.pipeline = pipeline_edit(list(ds.pipeline))
    return DATASETS.build(ds)


def _after_image_load(step):
    def edit(pipeline):
        where = [t['type'] for t in pipeline].index('LoadImageFromFile')
        return pipeline[:where + 1] + [step] + pipeline[where + 1:]
    return edit


def _loading_only(pipeline):
    """Load points and image, no further steps (raw arrays to compare)."""
    return [t for t in pipeline if t['type'] in ('LoadPointsFromFile', 'LoadImageFromFile')]


def _split_paths(root):
    ds = _val_dataset(root, lambda p: [])
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


# ---------------------------------------------------------------- derangement

def test_derangement_has_no_fixed_point_and_is_seeded():
    from gemini_det3d.datasets.transforms.swap_camera_image import derangement
    for n in (2, 3, 5, 24, 100):
        for seed in range(20):
            perm = derangement(n, seed)
            assert sorted(perm.tolist()) == list(range(n))
            assert not np.any(perm == np.arange(n)), (n, seed, perm)
            assert np.array_equal(perm, derangement(n, seed))
    assert derangement(2, 0).tolist() == [1, 0]
    # the seed decides: 20 seeds on 24 frames give (almost surely) several different pairings
    assert len({tuple(derangement(24, s)) for s in range(20)}) == 20
    with pytest.raises(ValueError, match='at least 2 frames'):
        derangement(1, 0)


# ---------------------------------------------------------------- SwapCameraImage

def test_swap_gives_each_frame_another_frames_pixels(converted_synthetic_kitti):
    from gemini_det3d.datasets.transforms.swap_camera_image import derangement
    root = converted_synthetic_kitti
    paths = _split_paths(root)
    n = 6
    perm = derangement(len(paths), seed=3)
    swap = dict(type='SwapCameraImage', img_paths=paths, permutation=perm.tolist())
    plain = _val_dataset(root, _loading_only)
    swapped = _val_dataset(root, lambda p: _after_image_load(swap)(_loading_only(p)))
    for i in range(n):
        a, b = plain.prepare_data(i), swapped.prepare_data(i)
        donor = mmcv.imread(paths[perm[i]])
        assert perm[i] != i
        assert b['img'].shape == a['img'].shape and b['img'].dtype == a['img'].dtype
        assert np.array_equal(b['img'], donor)
        assert not np.array_equal(b['img'], a['img'])
        assert b['camera_swap_path'] == paths[perm[i]]
        # the frame's own scan, calibration and paths
        assert b['img_path'] == a['img_path'] == paths[i]
        assert torch.equal(b['points'].tensor, a['points'].tensor)
        assert np.array_equal(b['lidar2img'], a['lidar2img'])
        assert np.array_equal(b['cam2img'], a['cam2img'])
        assert b['img_shape'] == a['img_shape'] and b['ori_shape'] == a['ori_shape']


def test_swap_resizes_a_picture_of_another_size(tmp_path):
    from gemini_det3d.datasets.transforms.swap_camera_image import SwapCameraImage
    rng = np.random.default_rng(0)
    own = rng.integers(0, 256, (37, 120, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (40, 128, 3), dtype=np.uint8)
    mmcv.imwrite(own, str(tmp_path / 'own.png'))
    mmcv.imwrite(other, str(tmp_path / 'other.png'))
    swap = SwapCameraImage([str(tmp_path / 'own.png'), str(tmp_path / 'other.png')], [1, 0])
    out = swap(dict(img=own.copy(), img_path=str(tmp_path / 'own.png'), img_shape=(37, 120)))
    assert out['img'].shape == own.shape and out['img'].dtype == np.uint8
    assert np.array_equal(out['img'], mmcv.imresize(other, (120, 37), interpolation='bilinear'))
    assert out['img_shape'] == (37, 120)
    # the other way round, and a path outside the split is an error naming it
    back = swap(dict(img=other.copy(), img_path=str(tmp_path / 'other.png')))
    assert np.array_equal(back['img'], mmcv.imresize(own, (128, 40), interpolation='bilinear'))
    with pytest.raises(KeyError, match='elsewhere.png'):
        swap(dict(img=own.copy(), img_path=str(tmp_path / 'elsewhere.png')))
    with pytest.raises(ValueError, match='exactly once'):
        SwapCameraImage(['a', 'b'], [0, 0])


# ---------------------------------------------------------------- BlankCameraImage

def test_blank_is_the_frames_mean_colour(converted_synthetic_kitti):
    blank = dict(type='BlankCameraImage')
    plain = _val_dataset(converted_synthetic_kitti, _loading_only)
    blanked = _val_dataset(converted_synthetic_kitti,
                           lambda p: _after_image_load(blank)(_loading_only(p)))
    for i in range(3):
        a, b = plain.prepare_data(i), blanked.prepare_data(i)
        mean = a['img'].reshape(-1, 3).astype(np.float64).mean(0)
        assert b['img'].shape == a['img'].shape and b['img'].dtype == np.float32
        assert np.array_equal(b['img'], np.broadcast_to(mean.astype(np.float32), a['img'].shape))
        assert a['img'].reshape(-1, 3).std(0).min() > 1  # the picture was not constant already
        assert torch.equal(b['points'].tensor, a['points'].tensor)
        assert np.array_equal(b['lidar2img'], a['lidar2img'])


# ---------------------------------------------------------------- the whole test pipeline

def test_lidar_channels_identical_with_and_without_the_probe(converted_synthetic_kitti):
    """Through the tiny config's full test pipeline (LiDARToDepthImage, Resize,
    StackDepthImage, Pack3DDetInputs): the LiDAR channels and the points are the frame's own,
    only the 3 RGB channels change."""
    root = converted_synthetic_kitti
    paths = _split_paths(root)
    perm = [1, 0] + list(range(3, len(paths))) + [2]
    steps = {'swap': dict(type='SwapCameraImage', img_paths=paths, permutation=perm),
             'blank': dict(type='BlankCameraImage')}
    frame = 0
    ref = _val_dataset(root).prepare_data(frame)
    img = ref['inputs']['img']
    assert img.shape[0] == 3 + 4 and img[3:].abs().sum() > 0  # RGB + 4 non-empty LiDAR channels
    for way, step in steps.items():
        out = _val_dataset(root, _after_image_load(step)).prepare_data(frame)
        probed = out['inputs']['img']
        assert probed.shape == img.shape, way
        assert torch.equal(probed[3:], img[3:]), way
        assert not torch.equal(probed[:3], img[:3]), way
        assert torch.equal(out['inputs']['points'], ref['inputs']['points']), way
        meta, ref_meta = out['data_samples'].metainfo, ref['data_samples'].metainfo
        assert np.array_equal(meta['lidar2img'], ref_meta['lidar2img']), way
        assert meta['img_shape'] == ref_meta['img_shape'] and meta['img_path'] == ref_meta['img_path']
        if way == 'blank':  # a constant picture stays constant through Resize and normalisation
            rgb = probed[:3].flatten(1)
            assert torch.allclose(rgb, rgb[:, :1].expand_as(rgb), atol=1e-4)


# ---------------------------------------------------------------- command-line errors

@pytest.mark.parametrize('which', ['config', 'checkpoint'])
def test_missing_file_is_one_line_exit_2(which, tmp_path, capsys):
    from gemini_det3d.utils.cli import run_cli
    probe = _probe_module()
    config = osp.join(REPO, GEMINI) if which == 'checkpoint' else str(tmp_path / 'no_config.py')
    checkpoint = str(tmp_path / 'no_such.pth')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(probe.main, [config, checkpoint, '--work-dir', str(tmp_path / 'wd')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    missing = config if which == 'config' else checkpoint
    assert len(err) == 1 and err[0].startswith('error: ') and missing in err[0], err


def test_probe_steps_go_right_after_the_image_load():
    from gemini_det3d.errors import GeminiInputError
    probe = _probe_module()
    loader = dict(dataset=dict(type='RepeatDataset', dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile'), dict(type='LoadImageFromFile', color_type='color'),
        dict(type='LiDARToDepthImage'), dict(type='StackDepthImage')])))
    out = probe.with_step_after_image_load(loader, dict(type='BlankCameraImage'), 'c.py')
    assert [t['type'] for t in out['dataset']['dataset']['pipeline']] == [
        'LoadPointsFromFile', 'LoadImageFromFile', 'BlankCameraImage', 'LiDARToDepthImage',
        'StackDepthImage']
    assert len(loader['dataset']['dataset']['pipeline']) == 4  # the config is not changed
    assert probe.image_load_options(loader) == {'color_type': 'color'}
    no_image = dict(dataset=dict(pipeline=[dict(type='LoadPointsFromFile')]))
    with pytest.raises(GeminiInputError, match='c.py: the test pipeline loads no camera image'):
        probe.with_step_after_image_load(no_image, dict(type='BlankCameraImage'), 'c.py')


# ---------------------------------------------------------------- end to end

def _save_untrained(config, path, seed=0):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.runner import save_checkpoint

    from gemini_det3d.utils.config import load_config
    register_all_modules(init_default_scope=True)
    torch.manual_seed(seed)
    model = MODELS.build(load_config(osp.join(REPO, config)).model)
    model.init_weights()
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def _first_val_frames(root, frames, path):
    """An info file of the first ``frames`` val frames (KittiMetric evaluates every frame of
    its info file, so a shorter split needs its own)."""
    import mmengine
    infos = mmengine.load(osp.join(root, 'kitti_infos_val.pkl'))
    mmengine.dump(dict(metainfo=infos['metainfo'], data_list=infos['data_list'][:frames]), path)
    return str(path)


def _run_probe(probe, config, checkpoint, root, ann_file, work_dir):
    out_json = osp.join(work_dir, 'probe.json')
    result = probe.main([
        osp.join(REPO, config), checkpoint, '--seed', '5', '--work-dir', str(work_dir),
        '--out-json', out_json, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.ann_file={ann_file}', f'test_evaluator.ann_file={ann_file}',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        # an untrained head scores every anchor near sigmoid(-4.6): keep its boxes, so there
        # are raw predictions to compare
        'model.test_cfg.pts.score_thr=0.0', 'model.test_cfg.pts.max_num=20'])
    with open(out_json) as f:
        return result, json.load(f)


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in ('scores_3d', 'labels_3d', 'bboxes_3d'))


@pytest.mark.slow
def test_probe_end_to_end(converted_synthetic_kitti, tmp_path, capsys):
    probe = _probe_module()
    root, frames = converted_synthetic_kitti, 6
    ann_file = _first_val_frames(root, frames, tmp_path / 'kitti_infos_val6.pkl')
    threads = torch.get_num_threads()
    for name, config, fused in (('gemini', GEMINI, True), ('lidaronly', LIDAR_ONLY, False)):
        ckpt = _save_untrained(config, tmp_path / f'{name}.pth')
        result, report = _run_probe(probe, config, ckpt, root, ann_file, tmp_path / name)
        # KITTI's numba evaluation must not leave torch at another thread count
        assert torch.get_num_threads() == threads
        out = capsys.readouterr().out
        # three KITTI AP tables, then the compact table
        for title in probe.TITLES.values():
            block = out.split(f'===== KITTI AP, {title} =====', 1)
            assert len(block) == 2, (name, title)
            assert 'AP40 Results' in block[1].split('=====', 1)[0], (name, title)
        for row in ('| as is |', '| swapped pictures |', '| blank pictures (mean colour) |',
                    '| swap - as is |', '| blank - as is |'):
            assert row in out, (name, row)
        # the JSON: three AP dicts from KittiMetric, the differences, the derangement
        assert set(report['metrics']) == set(probe.WAYS)
        for way in probe.WAYS:
            assert any(k.endswith('Car_3D_AP40_moderate_strict') for k in report['metrics'][way])
            assert set(report['ap40_moderate_3d'][way]) == set(probe.CLASSES)
        assert set(report['differences']) == {'swap', 'blank'}
        perm = report['permutation']
        assert sorted(perm) == list(range(frames)) and all(p != i for i, p in enumerate(perm))
        assert report['camera_branch'] is fused

        preds = result['predictions']
        assert [len(preds[w]) for w in probe.WAYS] == [frames] * 3
        assert all(len(p['scores_3d']) > 0 for p in preds['as_is'])  # something to compare
        swap_same = [_same(a, b) for a, b in zip(preds['as_is'], preds['swap'])]
        blank_same = [_same(a, b) for a, b in zip(preds['as_is'], preds['blank'])]
        if fused:
            # the picture reaches the boxes: every frame's scores move with another picture
            assert not any(swap_same) and not any(blank_same)
            assert report['frames_changed'] == {'swap': frames, 'blank': frames}
            assert 'no camera branch' not in out
        else:
            assert all(swap_same) and all(blank_same)
            assert report['frames_changed'] == {'swap': 0, 'blank': 0}
            assert all(v == 0 for d in report['differences'].values() for v in d.values())
            assert 'no camera branch (model.img_backbone=None): 0 differences' in out
