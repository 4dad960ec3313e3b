"""stretched_schedule_options: another number of epochs keeps the schedule's shape (the demo's
``--epochs``)."""
import math

import pytest
import torch

from _configs import load

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


def epoch_lrs(cfg, per_epoch=100):
    """The first iteration's learning rate of every epoch, stepped as mmengine's
    ParamSchedulerHook steps them (iteration-based after each step, epoch-based after each
    epoch)."""
    from mmengine.registry import PARAM_SCHEDULERS
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=opt))
                  for s in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(opt.param_groups[0]['lr'])
        for _ in range(per_epoch):
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return lrs


@pytest.mark.parametrize('epochs', [20, 5])
def test_the_cosine_spans_the_new_epochs(epochs):
    from gemini_det3d.utils.schedule import stretched_schedule_options
    cfg = load(TINY)
    options = stretched_schedule_options(cfg, epochs)
    assert options == [f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.end={epochs}',
                       f'param_scheduler.1.T_max={epochs}']
    base = cfg.optim_wrapper.optimizer.lr
    cfg.merge_from_dict({k: int(v) for k, v in (o.split('=') for o in options)},
                        allow_list_keys=True)
    lrs = epoch_lrs(cfg)
    assert len(lrs) == epochs
    # after the warm-up (the first 100 steps), a cosine over exactly the new epochs
    for epoch in range(1, epochs):
        assert lrs[epoch] == pytest.approx(base * (1 + math.cos(math.pi * epoch / epochs)) / 2,
                                           rel=0.02, abs=2e-5), epoch


def test_setting_the_epochs_alone_would_leave_the_rate_at_its_floor():
    """What the demo's ``--epochs 20`` did before: the cosine over 10 epochs, then its last value."""
    cfg = load(TINY)
    cfg.merge_from_dict({'train_cfg.max_epochs': 20})
    lrs = epoch_lrs(cfg)
    assert max(lrs[10:]) < 0.05 * cfg.optim_wrapper.optimizer.lr  # cosine's last value, 3 %


def test_iteration_schedulers_and_bad_epochs_are_left_alone():
    from mmengine.config import Config
    from gemini_det3d.utils.schedule import stretched_schedule_options
    cfg = Config(dict(train_cfg=dict(max_epochs=4), param_scheduler=[
        dict(type='LinearLR', by_epoch=False, begin=0, end=4),  # iterations: not an epoch
        dict(type='MultiStepLR', by_epoch=True, begin=0, end=3, milestones=[2]),  # ends earlier
        dict(type='CosineAnnealingLR', begin=1, end=4, T_max=3)]))  # by_epoch by default
    assert stretched_schedule_options(cfg, 8) == [
        'train_cfg.max_epochs=8', 'param_scheduler.2.end=8', 'param_scheduler.2.T_max=7']
    with pytest.raises(ValueError, match='epochs must be > 0'):
        stretched_schedule_options(cfg, 0)
