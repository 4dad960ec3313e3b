"""Every shipped detector config builds, trains one step and predicts on CPU."""
import glob
import os.path as osp

import pytest
import torch

import gemini_det3d  # noqa: F401
from _configs import REPO, batch_from, load, retarget

MAIN = 'configs/gemini_det3d/geminifusion-mvx_dual-swin-t-fpn_second-secfpn_8xb2-40e_kitti-3d-3class.py'
ABLATIONS = sorted(osp.relpath(p, REPO) for p in glob.glob(
    osp.join(REPO, 'configs/gemini_det3d/ablations/*.py')))
TINY = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs/gemini_det3d/tiny/*.py')))


def test_every_ablation_is_present():
    kinds = {osp.basename(p).split('-')[0] for p in ABLATIONS}
    assert {'tokenfusion', 'crossattn', 'concat', 'add', 'nofusion', 'rgbonly', 'lidaronly',
            'pointgemini'} <= kinds


def _train_step_and_predict(cfg, train_batch, val_batch):
    from mmdet3d.registry import MODELS
    if cfg.model.get('img_backbone') is not None:  # never download ImageNet weights in a test
        cfg.model.img_backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if getattr(model, 'img_neck', None) is not None:
        # the image FPN's BN statistics disagreed between training and test (base model config)
        bns = [n for n, m in model.img_neck.named_modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert not bns, f'BatchNorm in the image FPN: {bns}'
    model.train()
    data = model.data_preprocessor(train_batch, training=True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    fusion = (cfg.model.get('img_backbone') or {}).get('fusion_cfg') or {}
    # the fusion's own loss (TokenFusion's L1 on its scores) reaches the optimiser
    assert ('loss_token_l1' in losses) == (fusion.get('type') == 'TokenFusion'), sorted(losses)
    total.backward()
    trained = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert any(n.startswith('pts_middle_encoder') for n in trained)
    if cfg.model.get('img_backbone') is not None:
        assert any(n.startswith('img_backbone') for n in trained), 'no gradient reached the image branch'
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(val_batch, training=False), mode='predict')
    assert len(preds) == len(val_batch['data_samples'])
    inst = preds[0].pred_instances_3d
    assert inst.bboxes_3d.tensor.shape[-1] == 7 and len(inst.scores_3d) == len(inst.bboxes_3d)
    return model


@pytest.mark.slow
@pytest.mark.parametrize('config', [MAIN] + ABLATIONS + TINY)
def test_config_trains_one_step_and_predicts(config, converted_synthetic_kitti):
    cfg = load(config)
    # the full-size configs run at a reduced image size on CPU; tiny ones as they are
    scale = None if '/tiny/' in config else (416, 128)
    retarget(cfg, converted_synthetic_kitti, img_scale=scale)
    train_batch = batch_from(cfg, 'train_dataloader', (0, 1))
    img = train_batch['inputs']['img'][0]
    assert img.shape[0] == 7, 'RGB + depth, height, reflectance, mask'
    val_batch = batch_from(cfg, 'val_dataloader', (0, ))
    _train_step_and_predict(cfg, train_batch, val_batch)
