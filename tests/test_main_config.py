"""The main config as users run it: MVX-Net's point branch and optimiser, ImageNet Swin-T in
every config with an image branch (one option for a local copy), the point branch from an
mmdet3d checkpoint, the LR of new modules, and the tiny CPU configs' own settings pinned."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import gemini_det3d  # noqa: F401
from _configs import REPO
from helpers.scripts import load_script

MAIN = 'configs/gemini_det3d/geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py'
MVXNET = osp.join(osp.dirname(__import__('mmdet3d').__file__), '.mim/configs/mvxnet/'
                  'mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')
ABLATIONS = sorted(osp.relpath(p, REPO) for p in glob.glob(
    osp.join(REPO, 'configs/gemini_det3d/ablations/*.py')))
TINY = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs/gemini_det3d/tiny/*.py')))
SWIN_T_URL = ('https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
              'swin_tiny_patch4_window7_224.pth')
IMAGE_INIT = 'model.img_backbone.init_cfg.checkpoint'


def _cfg(path, options=None):
    from gemini_det3d.utils.config import load_config
    return load_config(osp.join(REPO, path), options)


def _unscoped(value):
    """``value`` without the ``_scope_`` keys that mmengine adds to ``mmdet3d::`` bases."""
    if isinstance(value, dict):
        return {k: _unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_unscoped(v) for v in value]
    return value


def _resize(cfg):
    ds = cfg.train_dataloader.dataset
    while 'dataset' in ds:
        ds = ds.dataset
    return next(s for s in ds.pipeline if s['type'] == 'RandomResize')


# --- parity with mmdet3d's MVX-Net KITTI config -----------------------------------------------
@pytest.mark.parametrize('config', [MAIN] + ABLATIONS)
def test_point_branch_optimiser_and_resize_are_mvxnets(config):
    ours, mvx = _cfg(config), Config.fromfile(MVXNET)
    for key in ('voxel', 'voxel_type', 'voxel_layer'):
        assert ours.model.data_preprocessor[key] == mvx.model.data_preprocessor[key], key
    assert ours.model.pts_voxel_encoder.type == mvx.model.pts_voxel_encoder.type == 'DynamicVFE'
    for key in ('pts_middle_encoder', 'pts_backbone', 'pts_neck', 'pts_bbox_head', 'train_cfg',
                'test_cfg'):
        assert ours.model[key] == mvx.model[key], key
    assert ours.optim_wrapper.optimizer == mvx.optim_wrapper.optimizer
    assert ours.optim_wrapper.clip_grad == mvx.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert _unscoped(ours.param_scheduler) == _unscoped(mvx.param_scheduler)
    mvx_resize = next(s for s in mvx.train_pipeline if s['type'] == 'RandomResize')
    assert _resize(ours) == mvx_resize


def test_lr_mult_slows_only_the_pretrained_swin():
    """mmengine's optimiser constructor on the main config's param-wise settings: the fusion
    modules and the LiDAR patch embedding at the full LR, the pretrained Swin at 0.1 x."""
    from mmdet3d.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    cfg = _cfg(MAIN)
    small = dict(embed_dims=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), init_cfg=None,
                 fusion_cfg=dict(type='GeminiFusion', num_heads=1))
    model = torch.nn.Module()
    model.img_backbone = MODELS.build({**cfg.model.img_backbone, **small})
    model.pts_backbone = torch.nn.Linear(2, 2)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    lr = {names[id(g['params'][0])]: (g['lr'], g['weight_decay']) for g in groups}
    base, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    fusion = [n for n in lr if n.startswith('img_backbone.fusions.')]
    lidar_embed = [n for n in lr if n.startswith('img_backbone.lidar.patch_embed.')]
    swin = [n for n in lr if n.startswith(('img_backbone.rgb.', 'img_backbone.lidar.norm'))]
    assert fusion and lidar_embed and len(swin) > 20
    for name in fusion + lidar_embed + ['pts_backbone.weight']:
        assert lr[name][0] == pytest.approx(base), name
    for name in swin:
        assert lr[name][0] == pytest.approx(0.1 * base), name
    tables = [n for n in swin if 'relative_position_bias_table' in n]
    assert tables and all(lr[n][1] == 0 for n in tables)
    assert lr['pts_backbone.weight'][1] == pytest.approx(wd)


# --- the tiny CPU configs keep their own settings --------------------------------------------
def test_tiny_configs_keep_hard_voxels_and_their_optimiser():
    for config in TINY:
        cfg = _cfg(config)
        pre = cfg.model.data_preprocessor
        assert pre.voxel_type == 'hard' and pre.voxel_layer.max_num_points == 5, config
        assert tuple(pre.voxel_layer.max_voxels) == (8000, 10000)
        assert cfg.model.pts_voxel_encoder.type == 'HardVFE'
        assert cfg.model.pts_pretrained is None
        if cfg.model.img_backbone is not None:
            assert cfg.model.img_backbone.init_cfg is None
        optim = cfg.optim_wrapper
        assert (optim.optimizer.lr, optim.optimizer.weight_decay) == (0.002, 0.001)
        assert optim.clip_grad == dict(max_norm=10, norm_type=2)
        assert optim.paramwise_cfg.custom_keys == {
            'img_backbone': dict(lr_mult=1.0), 'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}
        resize = _resize(cfg)
        assert (tuple(resize.scale), tuple(resize.ratio_range)) == ((624, 188), (0.9, 1.1))


# --- ImageNet Swin-T in every config with an image branch -------------------------------------
@pytest.fixture(scope='module')
def swin_t_checkpoint(tmp_path_factory):
    """A Swin-T checkpoint as mmdet saves one (``state_dict`` of ``backbone.*`` keys), random
    weights; ``(path, {stream key: tensor})``."""
    from mmdet.models.backbones.swin import SwinTransformer
    torch.manual_seed(3)
    swin = SwinTransformer()
    state = {k: v.clone() for k, v in swin.state_dict().items()}
    path = tmp_path_factory.mktemp('swin') / 'swin_tiny_patch4_window7_224.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()}}, path)
    return str(path), state


def test_main_config_starts_from_imagenet_swin_t():
    cfg = _cfg(MAIN)
    assert cfg.model.img_backbone.init_cfg == dict(type='Pretrained', checkpoint=SWIN_T_URL)


@pytest.mark.parametrize('config', [MAIN] + ABLATIONS)
def test_every_image_branch_loads_the_local_swin_option(config, swin_t_checkpoint):
    from mmdet3d.registry import MODELS
    path, swin = swin_t_checkpoint
    if _cfg(config).model.img_backbone is None:  # LiDAR-only: tools/ablate.py skips the option
        assert load_ablate().applicable_options(config, [f'{IMAGE_INIT}={path}'])[0] == []
        return
    assert _cfg(config).model.img_backbone.init_cfg.checkpoint == SWIN_T_URL
    cfg = _cfg(config, {IMAGE_INIT: path})
    backbone = MODELS.build(cfg.model.img_backbone)
    backbone.init_weights()
    streams = ([backbone.rgb, backbone.lidar] if hasattr(backbone, 'rgb') else [backbone.backbone])
    for stream in streams:
        own = stream.state_dict()
        own.update(('stages.' + k, v) for k, v in stream.stages.state_dict().items())
        for key, value in swin.items():
            if key.endswith(('relative_position_index', 'attn_mask')):
                continue
            if key == 'patch_embed.projection.weight' and own[key].shape[1] != 3:
                value = value.mean(dim=1, keepdim=True).repeat(1, own[key].shape[1], 1, 1)
            assert torch.equal(own[key], value), (config, key)


def load_ablate():
    return load_script('tools/ablate.py')


def test_ablate_skips_image_options_for_the_lidar_only_config_and_says_why(tmp_path):
    ablate = load_ablate()
    options = [f'{IMAGE_INIT}=x.pth', 'model.img_neck.out_channels=8', 'train_cfg.max_epochs=3']
    lidar = next(c for c in ABLATIONS if osp.basename(c).startswith('lidaronly'))
    kept, skipped = ablate.applicable_options(lidar, options)
    assert kept == ['train_cfg.max_epochs=3']
    assert [o for o, _ in skipped] == options[:2]
    assert skipped[0][1] == ('no image branch (model.img_backbone=None), '
                             f'{IMAGE_INIT} not applied')
    for config in [MAIN] + [c for c in ABLATIONS if c != lidar]:
        assert ablate.applicable_options(config, options) == (options, []), config


# --- the point branch from an mmdet3d MVX-Net checkpoint ---------------------------------------
def _is_sparse_conv(module):
    from spconv.pytorch.conv import SparseConvolution
    return isinstance(module, SparseConvolution)


def _mvxnet_checkpoint(path):
    """MVX-Net's own pts_* tensors (built from mmdet3d's MVX-Net KITTI config), one with a shape
    this model does not have, one key it does not have, and ResNet image-branch keys."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    mvx = Config.fromfile(MVXNET).model
    torch.manual_seed(5)
    state, permuted = {}, 0
    for part in ('pts_voxel_encoder', 'pts_middle_encoder', 'pts_backbone', 'pts_neck',
                 'pts_bbox_head'):
        module = MODELS.build({**mvx[part], **({'train_cfg': mvx.train_cfg.pts, 'test_cfg': mvx.test_cfg.pts}
                                               if part == 'pts_bbox_head' else {})})
        sparse = {f'{n}.weight' for n, m in module.named_modules() if _is_sparse_conv(m)}
        for key, value in module.state_dict().items():
            value = value.float().uniform_() if value.is_floating_point() else value
            if key in sparse:  # mmcv spconv's kernel layout [D, H, W, in, out], as in the
                value = value.permute(1, 2, 3, 4, 0).contiguous()  # released checkpoints
            state[f'{part}.{key}'] = value
        permuted += len(sparse)
    assert permuted
    state['pts_bbox_head.conv_cls.weight'] = torch.zeros(4, 512, 1, 1)  # another class count
    state['pts_fusion_extra.weight'] = torch.zeros(3)
    state['img_backbone.conv1.weight'] = torch.zeros(64, 3, 7, 7)
    state['img_backbone.layer1.0.conv1.weight'] = torch.zeros(64, 64, 1, 1)
    state['img_neck.fpn_convs.0.conv.weight'] = torch.zeros(256, 256, 3, 3)
    torch.save({'meta': {}, 'state_dict': state}, path)
    return state


def test_pts_pretrained_loads_the_fitting_pts_tensors_and_reports_the_rest(tmp_path, monkeypatch,
                                                                          swin_t_checkpoint):
    from mmdet3d.registry import MODELS
    ckpt = str(tmp_path / 'mvxnet_kitti.pth')
    state = _mvxnet_checkpoint(ckpt)
    cfg = _cfg(MAIN, {IMAGE_INIT: swin_t_checkpoint[0], 'model.pts_pretrained': ckpt})
    model = MODELS.build(cfg.model)
    from gemini_det3d.utils import partial_checkpoint
    logged = []
    monkeypatch.setattr(partial_checkpoint, 'print_log', lambda msg, **kw: logged.append(msg))
    model.init_weights()
    own = model.state_dict()
    loaded = [k for k in state if k.startswith('pts_') and k in own
              and k != 'pts_bbox_head.conv_cls.weight']
    assert len(loaded) > 50 and not [k for k in own if k.startswith('pts_') and k not in state]
    for key in loaded:
        if own[key].dim() == 5:  # spconv 2's [out, D, H, W, in]
            assert torch.equal(own[key], state[key].permute(4, 0, 1, 2, 3)), key
        else:
            assert torch.equal(own[key], state[key]), key
    assert any(own[k].dim() == 5 for k in loaded)
    assert own['pts_bbox_head.conv_cls.weight'].shape[0] != 4
    # the checkpoint's FPN kernel (zeros, same shape as this model's) is not pts_*: not loaded
    assert model.img_neck.fpn_convs[0].conv.weight.abs().sum() > 0
    lines = [m for m in logged if ckpt in m]
    assert len(lines) == 1 and '\n' not in lines[0], lines
    line = lines[0]
    assert f'loaded {len(loaded)} of its {len(loaded) + 2} pts_* tensors' in line
    assert '1 of another shape: pts_bbox_head.conv_cls.weight: checkpoint (4, 512, 1, 1)' in line
    assert '1 not in this model: pts_fusion_extra.weight' in line
    assert 'ignored: img_backbone (2), img_neck (1)' in line


def test_missing_checkpoints_are_one_line_naming_the_file(tmp_path):
    from gemini_det3d.errors import GeminiInputError
    from gemini_det3d.utils.partial_checkpoint import load_matching_tensors
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(GeminiInputError) as info:
        load_matching_tensors(torch.nn.Linear(2, 2), missing)
    assert str(info.value).startswith(missing) and '\n' not in str(info.value)
    from mmdet3d.registry import MODELS
    cfg = _cfg(MAIN, {IMAGE_INIT: missing})
    backbone = MODELS.build({**cfg.model.img_backbone, 'embed_dims': 24, 'depths': (1, 1, 1, 1),
                             'num_heads': (1, 2, 4, 8)})
    with pytest.raises((GeminiInputError, FileNotFoundError)) as info:
        backbone.init_weights()
    assert missing in str(info.value) and '\n' not in str(info.value)
