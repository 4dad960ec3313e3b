"""DualSwinTransformer: shapes on KITTI-sized input, wiring, weight sharing, pretrained start."""
from collections import OrderedDict

import pytest
import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmengine.config import ConfigDict

import gemini_det3d  # noqa: F401  (registers the modules)
from gemini_det3d.backbones import DualSwinInputError, DualSwinTransformer
from gemini_det3d.backbones import dual_swin as dual_swin_module
from gemini_det3d.errors import GeminiInputError
from mmdet3d.registry import MODELS

TINY = dict(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), drop_path_rate=0.)
LIDAR_CHANNELS = 4


def _tiny_dual(**overrides):
    cfg = dict(type='DualSwinTransformer', lidar_channels=LIDAR_CHANNELS,
               fusion_cfg=dict(type='GeminiFusion', num_heads=8), **TINY)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.eval()
    return model


def _image(height, width, batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3 + LIDAR_CHANNELS, height, width, generator=gen)


@pytest.mark.parametrize('fusion_position', ['block', 'stage'])
def test_kitti_shaped_input_gives_fpn_shapes(fusion_position):
    model = _tiny_dual(fusion_position=fusion_position, depths=(2, 1, 1, 1))
    with torch.no_grad():
        outs = model(_image(384, 1248))
    assert [tuple(o.shape) for o in outs] == [
        (1, 32, 96, 312), (1, 64, 48, 156), (1, 128, 24, 78), (1, 256, 12, 39)]
    assert model.num_features == [32, 64, 128, 256]
    expected_fusions = [2, 1, 1, 1] if fusion_position == 'block' else [1, 1, 1, 1]
    assert [len(f) for f in model.fusions] == expected_fusions
    assert [f[0].embed_dims for f in model.fusions] == [32, 64, 128, 256]
    assert all(torch.isfinite(o).all() for o in outs)


def test_sizes_not_divisible_by_patch_or_window_and_out_indices():
    model = _tiny_dual(out_indices=(1, 3))
    with torch.no_grad():
        outs = model(_image(101, 150, batch=2))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 13, 19), (2, 256, 4, 5)]


def test_streams_are_mmdet_swins_and_fusion_sits_between_them():
    """With NoFusion and concat output, each half is exactly one mmdet Swin's output."""
    model = _tiny_dual(fusion_cfg=dict(type='NoFusion'), share_weights=False, out_merge='concat')
    img = _image(64, 96, batch=2)
    with torch.no_grad():
        outs = model(img)
        rgb_outs, lidar_outs = model.rgb(img[:, :3]), model.lidar(img[:, 3:])
    for out, rgb, lidar in zip(outs, rgb_outs, lidar_outs):
        torch.testing.assert_close(out, torch.cat([rgb, lidar], dim=1))
    # a real fusion changes the result, and the mean merge averages the two streams
    fused = _tiny_dual(share_weights=False, out_merge='concat')
    fused.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        assert (fused(img)[0] - outs[0]).abs().max() > 1e-3
    mean_model = _tiny_dual(fusion_cfg=dict(type='NoFusion'), share_weights=False)
    mean_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(mean_model(img)[2], (rgb_outs[2] + lidar_outs[2]) / 2)


def test_gradients_flow_through_both_streams_and_every_fusion():
    model = _tiny_dual(fusion_position='block')
    model.train()
    outs = model(_image(64, 64))
    sum(o.square().mean() for o in outs).backward()
    assert model.rgb.patch_embed.projection.weight.grad.abs().sum() > 0
    assert model.lidar.patch_embed.projection.weight.grad.abs().sum() > 0
    for stage_fusions in model.fusions:
        for fusion in stage_fusions:
            assert fusion.key_noise.weight.grad.abs().sum() > 0


def test_weight_sharing_is_a_config_choice():
    shared, separate = _tiny_dual(share_weights=True), _tiny_dual(share_weights=False)
    assert shared.lidar.stages is shared.rgb.stages
    assert shared.lidar.patch_embed is not shared.rgb.patch_embed
    assert shared.lidar.norm0 is not shared.rgb.norm0
    assert separate.lidar.stages is not separate.rgb.stages
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    stage_params = count(shared.rgb.stages)
    assert count(separate) - count(shared) == stage_params
    # train() must return the model (mmdet's SwinTransformer.train returns None)
    assert shared.train() is shared


@pytest.mark.parametrize('share_weights', [True, False])
def test_optimizer_sees_every_parameter_once_and_freezing_works(share_weights):
    from mmengine.optim import build_optim_wrapper
    model = _tiny_dual(share_weights=share_weights, frozen_stages=1)
    model.train()
    assert not any(p.requires_grad for p in model.rgb.stages[0].parameters())
    assert not any(p.requires_grad for p in model.lidar.stages[0].parameters())
    assert all(p.requires_grad for p in model.fusions[0].parameters())
    # paramwise options make mmengine walk every module: a module registered under two
    # names would put its parameters into two groups and torch would refuse them
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'fusions': dict(lr_mult=2.0)})))
    in_groups = [p for group in wrapper.optimizer.param_groups for p in group['params']]
    assert len(in_groups) == len({id(p) for p in in_groups})
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable <= {id(p) for p in in_groups}


def test_bad_input_and_config_are_one_clear_error():
    model = _tiny_dual()
    with pytest.raises(DualSwinInputError, match=r'expected img \[B, 7, H, W\]'):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(DualSwinInputError, match='fusion_position'):
        _tiny_dual(fusion_position='everywhere')


# --- pretrained single-stream weights --------------------------------------------------

def _to_official_names(mmdet_state):
    """Inverse of mmdet's ``swin_converter``: mmdet key names -> official Swin release names."""
    def unfold_reduction(w):
        out_ch, in_ch = w.shape
        groups = w.reshape(out_ch, in_ch // 4, 4).transpose(1, 2)
        return groups[:, [0, 2, 1, 3]].reshape(out_ch, in_ch)

    def unfold_norm(w):
        return w.reshape(w.shape[0] // 4, 4).t()[[0, 2, 1, 3]].reshape(-1)

    official = OrderedDict()
    for key, value in mmdet_state.items():
        if key.startswith('stages.'):
            key = key.replace('stages.', 'layers.', 1).replace('attn.w_msa.', 'attn.')
            key = key.replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
            if 'downsample.reduction' in key:
                value = unfold_reduction(value)
            elif 'downsample.norm' in key:
                value = unfold_norm(value)
        elif key.startswith('patch_embed.projection'):
            key = key.replace('projection', 'proj')
        elif key.startswith('norm3.'):  # the official release's final norm
            key = key.replace('norm3.', 'norm.')
        elif key.startswith('norm'):  # no other output norms in the official release
            continue
        official[key] = value
    official['head.weight'] = torch.zeros(1000, 256)
    official['layers.1.blocks.0.attn_mask'] = torch.zeros(4, 49, 49)
    return official


def _stream_state(stream):
    """A stream's weights by mmdet Swin names, its stages included even when shared."""
    state = dict(stream.state_dict())
    state.update(('stages.' + k, v) for k, v in stream.stages.state_dict().items())
    return state


@pytest.fixture(scope='module')
def single_stream_swin():
    torch.manual_seed(0)
    swin = SwinTransformer(in_channels=3, **TINY)
    swin.init_weights()
    with torch.no_grad():  # make every tensor distinctive (norms included)
        for p in swin.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    swin.eval()
    return swin


@pytest.mark.parametrize('key_style', ['mmdet', 'mmdet_detector', 'official'])
@pytest.mark.parametrize('share_weights', [True, False])
def test_pretrained_single_stream_loads_into_both_streams(
        tmp_path, monkeypatch, single_stream_swin, key_style, share_weights):
    state = single_stream_swin.state_dict()
    path = tmp_path / f'swin_{key_style}.pth'
    if key_style == 'mmdet':
        torch.save(state, path)
    elif key_style == 'mmdet_detector':
        torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()},
                    'meta': {}}, path)
    else:
        torch.save({'model': _to_official_names(state)}, path)

    reports = []
    monkeypatch.setattr(dual_swin_module, 'print_log', lambda msg, **kw: reports.append(msg))
    model = _tiny_dual(share_weights=share_weights, fusion_cfg=dict(type='NoFusion'),
                       init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()

    rgb_state, lidar_state = _stream_state(model.rgb), _stream_state(model.lidar)
    if share_weights:
        assert model.lidar.stages is model.rgb.stages
    skip_official = ('norm0.', 'norm1.', 'norm2.')  # not in an official release
    checked = 0
    for key, value in state.items():
        if key_style == 'official' and key.startswith(skip_official):
            continue
        torch.testing.assert_close(rgb_state[key], value, rtol=0, atol=0, msg=key)
        if key == 'patch_embed.projection.weight':
            expected = value.mean(dim=1, keepdim=True).repeat(1, LIDAR_CHANNELS, 1, 1)
            assert lidar_state[key].shape == (32, LIDAR_CHANNELS, 4, 4)
            torch.testing.assert_close(lidar_state[key], expected)
        else:
            torch.testing.assert_close(lidar_state[key], value, rtol=0, atol=0, msg=key)
        checked += 1
    assert checked > 40

    # the RGB stream now computes exactly the single-stream Swin's features
    img = _image(64, 96)
    with torch.no_grad():
        expected_outs = single_stream_swin(img[:, :3])
        got = model.rgb(img[:, :3])
    torch.testing.assert_close(got[3], expected_outs[3])

    assert len(reports) == 1
    report = reports[0]
    assert 'into both streams' in report
    if key_style == 'official':
        # listed once although both streams miss it
        assert report.count('norm0.weight [lidar, rgb]') == 1
        assert 'norm3' not in report and 'attn_mask' not in report
    else:
        assert 'missing' not in report and 'not in the model' not in report


def test_pretrained_with_fusion_reports_new_tensors_and_rejects_garbage(tmp_path, monkeypatch,
                                                                       single_stream_swin):
    path = tmp_path / 'swin.pth'
    torch.save(single_stream_swin.state_dict(), path)
    reports = []
    monkeypatch.setattr(dual_swin_module, 'print_log', lambda msg, **kw: reports.append(msg))
    model = _tiny_dual(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    new_tensors = sum(1 for k in model.state_dict() if k.startswith('fusions.'))
    assert f'({new_tensors} fusion/merge tensors start from their own init)' in reports[0]

    garbage = tmp_path / 'garbage.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(2, 2)}}, garbage)
    model = _tiny_dual(init_cfg=dict(type='Pretrained', checkpoint=str(garbage)))
    with pytest.raises(GeminiInputError, match='garbage.pth: no Swin weights'):
        model.init_weights()
    not_torch = tmp_path / 'notes.pth'
    not_torch.write_text('not a checkpoint')
    model = _tiny_dual(init_cfg=dict(type='Pretrained', checkpoint=str(not_torch)))
    with pytest.raises(GeminiInputError, match=r'notes.pth: cannot read the checkpoint') as info:
        model.init_weights()
    assert '\n' not in str(info.value)


def _mmdet_reference(path, window_size, convert_weights, final_norm=None):
    """A plain mmdet SwinTransformer loaded by mmdet's own ``init_weights`` from ``path``
    (the expectation, computed without the project's loading code)."""
    reference = SwinTransformer(in_channels=3, **dict(TINY, window_size=window_size),
                                convert_weights=convert_weights,
                                init_cfg=ConfigDict(type='Pretrained', checkpoint=str(path)))
    reference.init_weights()
    state = reference.state_dict()
    if final_norm is not None:  # the official release's final norm is the last stage's
        state.update({f'norm3.{k}': v for k, v in final_norm.items()})
    return state


@pytest.mark.parametrize('key_style', ['official', 'mmdet_detector'])
@pytest.mark.parametrize('window_size', [7, 5])  # 5: tables resized from the checkpoint's 7
def test_pretrained_streams_equal_mmdet_loading_into_a_plain_swin(
        tmp_path, single_stream_swin, key_style, window_size):
    state = single_stream_swin.state_dict()
    if key_style == 'official':
        checkpoint = {'model': _to_official_names(state)}
        final_norm = {k[len('norm.'):]: v for k, v in checkpoint['model'].items()
                      if k.startswith('norm.')}
    else:
        checkpoint = {'state_dict': {'backbone.' + k: v for k, v in state.items()}}
        final_norm = None
    path, reference_path = tmp_path / 'swin.pth', tmp_path / 'swin_for_mmdet.pth'
    torch.save(checkpoint, path)
    # mmdet's loader stops at a relative_position_index of another window size, so its
    # reference input goes without these recomputed buffers
    wrapper = next(iter(checkpoint))
    torch.save({wrapper: {k: v for k, v in checkpoint[wrapper].items()
                          if not k.endswith(('relative_position_index', 'attn_mask'))}},
               reference_path)
    expected = _mmdet_reference(reference_path, window_size, key_style == 'official', final_norm)

    for share_weights in (True, False):
        model = _tiny_dual(share_weights=share_weights, window_size=window_size,
                           fusion_cfg=dict(type='NoFusion'),
                           init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        model.init_weights()
        rgb_state, lidar_state = _stream_state(model.rgb), _stream_state(model.lidar)
        assert sorted(rgb_state) == sorted(lidar_state) == sorted(expected)
        for key, value in expected.items():
            assert torch.equal(rgb_state[key], value), key
            if key == 'patch_embed.projection.weight':  # RGB kernel averaged, repeated
                value = value.mean(dim=1, keepdim=True).repeat(1, LIDAR_CHANNELS, 1, 1)
            assert torch.equal(lidar_state[key], value), key
    if window_size != 7:  # the resize happened (not a silently kept initial table)
        table = 'stages.0.blocks.0.attn.w_msa.relative_position_bias_table'
        assert expected[table].shape == (81, 1) and state[table].shape == (169, 1)


def test_pretrained_missing_file_or_deeper_swin_is_one_line_naming_the_file(
        tmp_path, single_stream_swin):
    missing = tmp_path / 'nowhere' / 'swin.pth'
    model = _tiny_dual(init_cfg=dict(type='Pretrained', checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError) as info:
        model.init_weights()
    assert str(missing) in str(info.value) and '\n' not in str(info.value)

    deeper = SwinTransformer(in_channels=3, **dict(TINY, depths=(1, 1, 2, 1)))
    path = tmp_path / 'swin_deeper.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in deeper.state_dict().items()}},
               path)
    model = _tiny_dual(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(GeminiInputError,
                       match=r'swin_deeper.pth: .*stages.2.blocks.1.* is not in the model') as info:
        model.init_weights()
    assert '\n' not in str(info.value)
