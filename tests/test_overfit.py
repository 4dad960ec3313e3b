"""The tiny GeminiFusion model can learn: dozens of steps on two fixed frames halve its loss."""
import pytest
import torch

import gemini_det3d  # noqa: F401
from _configs import batch_from, load, retarget

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


def _total(losses):
    return sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
               for k, v in losses.items() if 'loss' in k)


@pytest.mark.slow  # 200 optimiser steps
def test_tiny_geminifusion_overfits_two_frames(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    cfg = retarget(load(TINY), converted_synthetic_kitti)
    batch = batch_from(cfg, 'train_dataloader', (0, 1))  # one fixed, augmented draw of 2 frames
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    data = model.data_preprocessor(batch, training=True)
    losses = []
    for _ in range(40):
        loss = _total(model(**data, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last <= 0.5 * first, f'loss {first:.3f} -> {last:.3f} (curve {[round(x, 2) for x in losses]})'
