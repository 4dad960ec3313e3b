"""GeminiMVXFasterRCNN with dynamic voxels (DynamicVFE, as the main config): a frame without
points, or with every point outside the grid, leaves the batch, and the other frame's loss
and head output are what they are when it is alone."""
import copy

import pytest
import torch

import gemini_det3d  # noqa: F401
from _configs import batch_from, retarget

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
DYNAMIC = {'model.data_preprocessor.voxel_type': 'dynamic',
           'model.data_preprocessor.voxel_layer.max_num_points': -1,
           'model.data_preprocessor.voxel_layer.max_voxels': (-1, -1),
           'model.pts_voxel_encoder.type': 'DynamicVFE'}


@pytest.fixture(scope='module')
def dynamic_model_and_batch(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from gemini_det3d.utils.config import load_config
    register_all_modules(init_default_scope=True)
    from _configs import REPO
    import os.path as osp
    # one image scale (the config's own, no random resize): both pictures of the batch get the
    # same size, so a frame alone is padded as in the pair and only the empty frame differs
    cfg = retarget(load_config(osp.join(REPO, TINY), DYNAMIC), converted_synthetic_kitti,
                   img_scale=(624, 188))
    cfg.model.img_point_loss = None  # the head's losses only (that loss: its own test file)
    # and the camera evidence its classifier feeds (own test file), the head at SECOND's width
    cfg.model.bev_camera_evidence = None
    cfg.model.pts_bbox_head.update(in_channels=128, feat_channels=128)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model, batch_from(cfg, 'train_dataloader', (0, 1))


def _without_points(batch, how):
    batch = copy.deepcopy(batch)
    points = batch['inputs']['points'][1]
    if how == 'no points':
        batch['inputs']['points'][1] = points[:0]
    else:  # every point 100 m behind the sensor: outside point_cloud_range (x from 0)
        points = points.clone()
        points[:, 0] = -100.0
        batch['inputs']['points'][1] = points
    return batch


def _first_only(batch):
    return {'inputs': {k: v[:1] for k, v in batch['inputs'].items()},
            'data_samples': batch['data_samples'][:1]}


@pytest.mark.parametrize('how', ['no points', 'all points outside the grid'])
def test_dynamic_voxel_batch_with_an_empty_frame(dynamic_model_and_batch, how):
    model, batch = dynamic_model_and_batch
    assert batch['inputs']['img'][0].shape == batch['inputs']['img'][1].shape
    mixed, alone = _without_points(batch, how), _first_only(batch)
    data = model.data_preprocessor(mixed, training=True)
    assert 'num_points' not in data['inputs']['voxels']  # dynamic voxels: points + coordinates
    assert model._samples_with_points(data['inputs'], 2).tolist() == [0]

    def losses(b):
        """The losses and the head's training-mode class map of the batch's first sample."""
        model.train()
        torch.manual_seed(1)
        maps = []
        hook = model.pts_bbox_head.register_forward_hook(
            lambda module, args, out: maps.append(out[0][0][:1].detach().clone()))
        try:
            out = model(**model.data_preprocessor(b, training=True), mode='loss')
        finally:
            hook.remove()
        return {k: sum(v) if isinstance(v, (list, tuple)) else v for k, v in out.items()}, maps[0]

    (got, got_map), (expected, expected_map) = losses(mixed), losses(alone)
    assert set(got) == set(expected) and all(torch.isfinite(v) for v in got.values())
    # the same batch statistics: the empty frame is not in the batch, so the first sample's
    # head output and losses are those of a batch of it alone. Relative 1e-3: with more than one
    # torch thread (an earlier KITTI evaluation in the process raises the count) a batch of two
    # may sum in another order than a batch of one
    assert torch.allclose(got_map, expected_map, rtol=1e-3, atol=1e-4), \
        (got_map - expected_map).abs().max()
    for key in expected:
        assert torch.allclose(got[key], expected[key], rtol=1e-3, atol=1e-4), (key, got[key], expected[key])

    head_maps = []
    hook = model.pts_bbox_head.register_forward_hook(
        lambda module, args, out: head_maps.append(out[0][0].clone()))
    model.eval()
    try:
        with torch.no_grad():
            preds = model(**model.data_preprocessor(mixed, training=False), mode='predict')
            mixed_map = head_maps.pop()
            model(**model.data_preprocessor(alone, training=False), mode='predict')
            alone_map = head_maps.pop()
    finally:
        hook.remove()
    assert mixed_map.shape == alone_map.shape and torch.allclose(mixed_map, alone_map, atol=1e-5)
    empty = preds[1].pred_instances_3d
    assert empty.bboxes_3d.tensor.shape == (0, 7) and len(empty.scores_3d) == 0
