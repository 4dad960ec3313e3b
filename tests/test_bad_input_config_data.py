"""Bad input at the doors of configs, checkpoints and data folders: the real tools, run as
subprocesses, end with ONE line on stderr naming the file / key and the problem, exit 2.

Doors: a config with an unknown fusion type or a channel count that does not fit (train.py,
test.py); a checkpoint of another model or no checkpoint at all (test.py, infer.py,
visualize.py), while a checkpoint of the model itself still loads; a data root without
ImageSets (create_data.py); info files of mmdet3d 0.x's converter (train.py, test.py).
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import gemini_det3d  # noqa: F401
from _configs import REPO, load

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
TINY_LIDAR = 'configs/gemini_det3d/tiny/lidaronly-second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
ALL_CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(
    osp.join(REPO, 'configs/gemini_det3d/**/*.py'), recursive=True))


def run_tool(tool, *args):
    return subprocess.run([sys.executable, f'tools/{tool}', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env=dict(os.environ, GEMINI_DEBUG=''))


def one_error_line(proc) -> str:
    """The run ended with exit 2 and exactly one stderr line ``error: ...``; returns it."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-3000:])
    assert lines[0].startswith('error: ') and 'Traceback' not in proc.stdout
    return lines[0]


def retargeted_config(tmp_path, base, data_root, name='cfg.py') -> str:
    """A config file inheriting ``base`` on ``data_root``, without loader workers; training
    is one iteration on one frame, without validation."""
    text = textwrap.dedent(f'''
        _base_ = [{osp.join(REPO, base)!r}]
        _root = {str(data_root)!r}
        train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                                dataset=dict(dataset=dict(data_root=_root, indices=1)))
        val_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=_root))
        test_dataloader = val_dataloader
        val_evaluator = dict(ann_file=_root + 'kitti_infos_val.pkl')
        test_evaluator = val_evaluator
        train_cfg = dict(max_epochs=1, val_begin=2)  # mmengine validates after the last epoch
        default_hooks = dict(logger=dict(interval=1))
        ''')
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope='module')
def trained(converted_synthetic_kitti, tmp_path_factory):
    """``{'gemini': (config, ckpt), 'lidar': (config, ckpt)}``: the tiny GeminiFusion model
    after a one-iteration training run, and the tiny LiDAR-only model as built (its
    checkpoint saved the way mmengine's CheckpointHook saves one)."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.runner.checkpoint import weights_to_cpu
    tmp = tmp_path_factory.mktemp('bad_input_runs')
    config = retargeted_config(tmp, TINY, converted_synthetic_kitti, 'gemini.py')
    proc = run_tool('train.py', config, '--work-dir', tmp / 'gemini')
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {'gemini': (config, str(tmp / 'gemini' / 'epoch_1.pth'))}
    assert osp.isfile(runs['gemini'][1]), os.listdir(tmp / 'gemini')

    register_all_modules(init_default_scope=True)
    config = retargeted_config(tmp, TINY_LIDAR, converted_synthetic_kitti, 'lidar.py')
    model = MODELS.build(load(config).model)
    runs['lidar'] = (config, str(tmp / 'lidar_epoch_1.pth'))
    torch.save({'meta': {'epoch': 1}, 'state_dict': weights_to_cpu(model.state_dict())},
               runs['lidar'][1])
    return runs


# ---------------------------------------------------------------------------------------------
# 1. Configs: unknown fusion type, channel counts that do not fit
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('config', ALL_CONFIGS)
def test_every_shipped_config_passes_the_checks(config):
    load(config)  # load_config runs check_model_config


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_unknown_fusion_type_lists_the_registered_ones(tool, tmp_path):
    from gemini_det3d.fusion import registered_fusion_types
    args = [TINY] + (['unused.pth'] if tool == 'test.py' else [])
    proc = run_tool(tool, *args, '--work-dir', tmp_path / 'wd',
                    '--cfg-options', 'model.img_backbone.fusion_cfg.type=Foo')
    line = one_error_line(proc)
    assert TINY in line and "model.img_backbone.fusion_cfg.type: 'Foo'" in line
    assert 'not a registered fusion type' in line
    registered = registered_fusion_types()
    assert {'GeminiFusion', 'TokenFusion', 'CrossAttentionFusion', 'ConcatFusion', 'AddFusion',
            'NoFusion'} <= set(registered) and 'PointGeminiFusion' not in registered
    assert f'(registered: {", ".join(registered)})' in line
    assert not (tmp_path / 'wd').exists(), 'failed after the runner had started'


def test_the_backbone_itself_rejects_an_unknown_fusion_type():
    from gemini_det3d.backbones import DualSwinInputError, DualSwinTransformer
    with pytest.raises(DualSwinInputError, match=r"fusion_cfg.type: 'Foo' is not a registered "
                       r'fusion type \(registered: AddFusion, ConcatFusion'):
        DualSwinTransformer(fusion_cfg=dict(type='Foo'))
    # a registered module of another kind (point-level) is not a stage fusion module
    with pytest.raises(DualSwinInputError, match="'PointGeminiFusion' is not a stage fusion"):
        DualSwinTransformer(fusion_cfg=dict(type='PointGeminiFusion'))


@pytest.mark.parametrize('option, expected', [
    (('model.img_backbone.lidar_channels', 5),
     'model.img_backbone.lidar_channels=5 (3 RGB + 5 LiDAR) reads 8 image channels but '
     'train_dataloader.dataset.dataset.pipeline stacks 7: 3 RGB + 4 LiDAR channels'),
    (('model.img_backbone.in_channels', 7),
     "model.img_backbone.in_channels: DualSwinTransformer takes no argument 'in_channels' "
     '(its input is 3 RGB + lidar_channels channels)'),
    (('model.img_neck.in_channels', [24, 48, 96, 384]),
     'model.img_neck.in_channels=[24, 48, 96, 384] but model.img_backbone outputs '
     '[24, 48, 96, 192] channels (embed_dims=24'),
    (('model.img_backbone.out_merge', 'concat'),
     'model.img_neck.in_channels=[24, 48, 96, 192] but model.img_backbone outputs '
     '[48, 96, 192, 384] channels'),
    (('model.pts_voxel_encoder.fusion_layer.img_channels', 64),
     'model.pts_voxel_encoder.fusion_layer.img_channels=64 but model.img_neck.out_channels=32'),
])
def test_channel_counts_that_disagree_name_both_keys(option, expected):
    from gemini_det3d.utils.config import load_config
    from gemini_det3d.utils.model_config_check import ConfigCheckError
    with pytest.raises(ConfigCheckError) as info:
        load_config(osp.join(REPO, TINY), dict([option]))
    message = str(info.value)
    assert message.startswith(osp.join(REPO, TINY) + ': ') and expected in message, message
    assert '\n' not in message


def test_rgb_only_slice_wider_than_the_stacked_image():
    from gemini_det3d.utils.config import load_config
    from gemini_det3d.utils.model_config_check import ConfigCheckError
    rgb = 'configs/gemini_det3d/ablations/rgbonly-mvx_swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py'
    with pytest.raises(ConfigCheckError, match=r'model.img_backbone.channels=\[0, 1, 9\] needs '
                       r'at least 10 image channels but .* stacks 7'):
        load_config(osp.join(REPO, rgb), {'model.img_backbone.channels': [0, 1, 9]})
    with pytest.raises(ConfigCheckError, match=r'slices 2 channels \[0, 1\] but model.img_backbone.'
                       r'backbone.in_channels=3 reads 3'):
        load_config(osp.join(REPO, rgb), {'model.img_backbone.channels': [0, 1]})


@pytest.mark.slow
def test_wrong_channel_count_stops_test_py_before_the_runner(tmp_path):
    proc = run_tool('test.py', TINY, 'unused.pth', '--work-dir', tmp_path / 'wd',
                    '--cfg-options', 'model.img_backbone.lidar_channels=2')
    line = one_error_line(proc)
    assert 'model.img_backbone.lidar_channels=2' in line and 'stacks 7' in line
    assert not (tmp_path / 'wd').exists()


# ---------------------------------------------------------------------------------------------
# 2. Checkpoints: another model's, or no checkpoint at all; the model's own still loads
# ---------------------------------------------------------------------------------------------
def _state_dict_of(ckpt):
    return torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']


@pytest.mark.slow
def test_a_checkpoint_of_the_model_loads_and_tests(trained, tmp_path):
    """test.py runs the trained checkpoint (on the test split: no KITTI AP, which is slow)."""
    config, ckpt = trained['gemini']
    proc = run_tool('test.py', config, ckpt, '--split', 'test', '--submission-dir',
                    tmp_path / 'sub', '--work-dir', tmp_path / 'wd')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(os.listdir(tmp_path / 'sub')) == 1  # the fixture's one test frame


@pytest.mark.slow
def test_test_py_lists_the_keys_of_another_model(trained, tmp_path):
    config, _ = trained['gemini']
    _, lidar_ckpt = trained['lidar']
    proc = run_tool('test.py', config, lidar_ckpt, '--work-dir', tmp_path / 'wd')
    line = one_error_line(proc)
    ours = {k: v.shape for k, v in _state_dict_of(trained['gemini'][1]).items()}
    theirs = {k: v.shape for k, v in _state_dict_of(lidar_ckpt).items()}
    # mmengine's strict load does not count a missing BatchNorm counter (torch starts it at 0)
    missing = [k for k in ours if k not in theirs and not k.endswith('.num_batches_tracked')]
    reshaped = [k for k in ours if k in theirs and theirs[k] != ours[k]]
    assert missing and reshaped and all(k in ours for k in theirs)
    assert f'{lidar_ckpt}: weights of another model, they do not fit the model of {config}' in line
    assert f'{len(missing)} missing in the checkpoint: {", ".join(missing[:3])}, ... ' \
           f'({len(missing) - 3} more)' in line
    assert f'{len(reshaped)} of another shape: {reshaped[0]} checkpoint ' \
           f'{tuple(theirs[reshaped[0]])} vs model {tuple(ours[reshaped[0]])}' in line
    assert 'not in the model' not in line
    assert not (tmp_path / 'wd' / 'metrics.json').exists()


def test_a_lidar_only_config_rejects_the_fused_checkpoint(trained):
    """The other way round: the fused model's extra keys are "not in the model"."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from gemini_det3d.utils.checkpoint_check import (CheckpointMismatchError,
                                                     check_checkpoint_fits, read_checkpoint)
    register_all_modules(init_default_scope=True)
    lidar_config, lidar_ckpt = trained['lidar']
    model = MODELS.build(load(lidar_config).model)
    check_checkpoint_fits(model, read_checkpoint(lidar_ckpt), lidar_ckpt)  # its own: fine
    extra = [k for k in _state_dict_of(trained['gemini'][1]) if k not in model.state_dict()]
    assert any(k.startswith('img_backbone.') for k in extra)
    with pytest.raises(CheckpointMismatchError, match=rf'[:;] {len(extra)} not in the model: '
                       rf'{re.escape(", ".join(extra[:3]))}, \.\.\. \({len(extra) - 3} more\);'):
        check_checkpoint_fits(model, read_checkpoint(trained['gemini'][1]), trained['gemini'][1])


@pytest.mark.slow
def test_a_file_that_is_not_a_checkpoint(converted_synthetic_kitti, tmp_path):
    from gemini_det3d.utils.checkpoint_check import CheckpointMismatchError, read_checkpoint
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'this is not a checkpoint\n')
    line = one_error_line(run_tool('test.py', TINY, bad, '--work-dir', tmp_path / 'wd'))
    assert f'{bad}: not a checkpoint (torch.load failed: ' in line
    assert not (tmp_path / 'wd').exists()
    infos = f'{converted_synthetic_kitti}kitti_infos_val.pkl'  # a pickle, but of infos
    with pytest.raises(CheckpointMismatchError, match=f'{re.escape(infos)}: not a checkpoint'):
        read_checkpoint(infos)


def test_a_pickled_dict_without_weights_is_not_a_model_checkpoint(tmp_path):
    from gemini_det3d.utils.checkpoint_check import CheckpointMismatchError, read_checkpoint
    path = tmp_path / 'meta_only.pth'
    torch.save({'meta': {'epoch': 3}, 'state_dict': {}}, path)
    with pytest.raises(CheckpointMismatchError, match='no state_dict of tensors'):
        read_checkpoint(str(path))


@pytest.mark.slow
def test_infer_and_visualize_reject_another_models_checkpoint(trained, converted_synthetic_kitti,
                                                              tmp_path):
    root = converted_synthetic_kitti
    config, _ = trained['gemini']
    _, lidar_ckpt = trained['lidar']
    frame = open(f'{root}ImageSets/val.txt').read().split()[0]
    proc = run_tool('infer.py', config, lidar_ckpt, '--velodyne', f'{root}training/velodyne/{frame}.bin',
                    '--calib', f'{root}training/calib/{frame}.txt',
                    '--image', f'{root}training/image_2/{frame}.png')
    line = one_error_line(proc)
    assert f'{lidar_ckpt}: weights of another model' in line and 'missing in the checkpoint' in line
    proc = run_tool('visualize.py', config, '--checkpoint', lidar_ckpt, '--num', 1,
                    '--out-dir', tmp_path / 'pics', '--renderer', 'software', '--no-progress')
    line = one_error_line(proc)
    assert f'{lidar_ckpt}: weights of another model' in line and 'missing in the checkpoint' in line
    assert not (tmp_path / 'pics').exists() or not os.listdir(tmp_path / 'pics')


def test_init_checked_model_loads_the_models_own_weights(trained):
    from gemini_det3d.apis.inference import init_checked_model
    config, ckpt = trained['gemini']
    model = init_checked_model(config, ckpt)
    saved = _state_dict_of(ckpt)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert list(model.dataset_meta['classes']) == ['Pedestrian', 'Cyclist', 'Car']


# ---------------------------------------------------------------------------------------------
# 3. A data root without ImageSets
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_create_data_names_the_missing_imagesets_folder(converted_synthetic_kitti, tmp_path):
    root = tmp_path / 'kitti'
    root.mkdir()
    for folder in ('training', 'testing'):
        os.symlink(osp.join(converted_synthetic_kitti, folder), root / folder)
    proc = run_tool('create_data.py', 'kitti', '--root-path', root, '--out-dir', root)
    line = one_error_line(proc)
    assert f'{root / "ImageSets"}: folder missing: it should hold the split files train.txt ' \
           'and val.txt' in line
    assert sorted(os.listdir(root)) == ['testing', 'training'], 'something was written'


# ---------------------------------------------------------------------------------------------
# 4. Info files of an older converter
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def root_with_old_infos(converted_synthetic_kitti, tmp_path_factory):
    """The converted set, but its info files replaced by mmdet3d's own 0.x-format infos (the
    ``create_kitti_info_file`` step of its converter, before ``update_infos_to_v2``)."""
    from gemini_det3d.datasets.kitti_converter import mmdet3d_converter_modules
    src = converted_synthetic_kitti
    root = tmp_path_factory.mktemp('old_infos')
    for name in ('ImageSets', 'training', 'testing'):
        os.symlink(osp.join(src, name), root / name)
    mmdet3d_converter_modules().kitti_converter.create_kitti_info_file(
        src, 'kitti', save_path=str(root), relative_path=True)
    return str(root) + '/'


def test_old_infos_are_a_list_of_0x_frames(root_with_old_infos):
    import mmengine
    infos = mmengine.load(f'{root_with_old_infos}kitti_infos_train.pkl')
    assert isinstance(infos, list) and {'image', 'point_cloud', 'calib', 'annos'} <= set(infos[0])


@pytest.mark.parametrize('tool, pkl', [('train.py', 'kitti_infos_train.pkl'),
                                       ('test.py', 'kitti_infos_val.pkl')])
@pytest.mark.slow
def test_an_info_file_of_an_older_converter(tool, pkl, root_with_old_infos, trained, tmp_path):
    config = retargeted_config(tmp_path, TINY, root_with_old_infos)
    args = [config] + ([trained['gemini'][1]] if tool == 'test.py' else [])
    proc = run_tool(tool, *args, '--work-dir', tmp_path / 'wd')
    line = one_error_line(proc)
    assert f'{root_with_old_infos}{pkl}: made by an older converter (mmdet3d 0.x' in line
    assert f'rerun python tools/create_data.py kitti --root-path {root_with_old_infos[:-1]}' in line
    assert 'update_infos_to_v2.py' in line
    assert not glob.glob(str(tmp_path / 'wd' / '*.pth'))


def test_strict_dataset_reads_the_current_infos_like_mmdet3d(converted_synthetic_kitti):
    from mmdet3d.datasets import KittiDataset
    from gemini_det3d.datasets import StrictKittiDataset
    args = dict(data_root=converted_synthetic_kitti, ann_file='kitti_infos_train.pkl',
                data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2'),
                modality=dict(use_lidar=True, use_camera=True), metainfo=dict(
                    classes=['Pedestrian', 'Cyclist', 'Car']))
    ours, theirs = StrictKittiDataset(**args), KittiDataset(**args)
    assert len(ours) == len(theirs) == 4
    assert [d['lidar_points']['lidar_path'] for d in ours.data_list] == \
           [d['lidar_points']['lidar_path'] for d in theirs.data_list]


def test_info_file_without_the_camera_or_of_another_data_set(converted_synthetic_kitti, tmp_path):
    import mmengine
    from gemini_det3d.datasets import InfoFileError, check_kitti_info_file
    infos = mmengine.load(f'{converted_synthetic_kitti}kitti_infos_val.pkl')
    check_kitti_info_file(f'{converted_synthetic_kitti}kitti_infos_val.pkl', camera_key='CAM2')
    del infos['data_list'][1]['images']['CAM2']
    path = tmp_path / 'no_cam.pkl'
    mmengine.dump(infos, str(path))
    check_kitti_info_file(str(path))  # a LiDAR-only data set does not need the camera
    with pytest.raises(InfoFileError, match=r"data_list\[1\] \(frame \d+\) has no images\['CAM2'\]"):
        check_kitti_info_file(str(path), camera_key='CAM2')
    infos['metainfo']['dataset'] = 'nuscenes'
    mmengine.dump(infos, str(path))
    with pytest.raises(InfoFileError, match="of the 'nuscenes' data set, not KITTI"):
        check_kitti_info_file(str(path))
