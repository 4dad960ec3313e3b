"""mmdet3d's shipped KITTI models train and predict on CPU through gemini_det3d.compat."""
import numpy as np
import pytest
import torch
from mmengine.config import Config

import gemini_det3d  # noqa: F401
from _stock import kitti_like_lidar2img, mmdet3d_config_path, random_scene


def _build(cfg_rel, **model_overrides):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(mmdet3d_config_path(cfg_rel))
    cfg.model.update(model_overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _batch(with_img=None, seed=0):
    from mmdet3d.structures import Det3DDataSample
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    points, boxes, labels = random_scene(rng)
    sample = Det3DDataSample()
    sample.gt_instances_3d = InstanceData(bboxes_3d=boxes, labels_3d=labels)
    meta = dict(box_type_3d=type(boxes), sample_idx=0)
    inputs = dict(points=[points])
    if with_img is not None:
        h, w = with_img
        scale = np.diag([w / 1242, h / 375, 1, 1])
        meta.update(lidar2img=scale @ kitti_like_lidar2img(), img_shape=(h, w),
                    ori_shape=(375, 1242), scale_factor=np.array([1.0, 1.0]), flip=False)
        inputs['img'] = [torch.rand(3, h, w) * 255]
    sample.set_metainfo(meta)
    return dict(inputs=inputs, data_samples=[sample])


def _train_step_and_grads(model, batch, grad_prefix):
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith(grad_prefix)]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), \
        f'no gradient reached {grad_prefix}'
    return total


def test_stock_second_kitti_3class_trains_and_predicts_on_cpu():
    model = _build('second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py')
    batch = _batch()
    _train_step_and_grads(model, batch, 'middle_encoder')
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch, training=False), mode='predict')
    assert len(preds) == 1
    inst = preds[0].pred_instances_3d
    assert inst.bboxes_3d.tensor.shape[1] == 7
    assert len(inst.scores_3d) == len(inst.labels_3d) == len(inst.bboxes_3d)


def test_stock_mvxnet_kitti_dynamic_voxels_point_fusion_trains_on_cpu():
    # the shipped config, only with a small image (CPU time); dynamic voxelization and
    # DynamicVFE + PointFusion run through the compat DynamicScatter
    model = _build('mvxnet/mvxnet_fpn_dv_second_secfpn_8xb2-80e_kitti-3d-3class.py')
    batch = _batch(with_img=(96, 320))
    _train_step_and_grads(model, batch, 'pts_middle_encoder')
    fusion_grads = [p.grad for n, p in model.named_parameters()
                    if 'fusion_layer' in n and p.grad is not None]
    assert fusion_grads and any(g.abs().sum() > 0 for g in fusion_grads)
