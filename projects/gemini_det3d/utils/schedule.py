"""Train a config for another number of epochs without breaking its learning-rate schedule."""
from typing import List


def stretched_schedule_options(cfg, epochs: int) -> List[str]:
    """``--cfg-options`` that train ``epochs`` epochs with the config's schedule stretched to
    them.

    Setting ``train_cfg.max_epochs`` alone leaves an epoch-based scheduler that ends at the
    config's last epoch where it was: a cosine over 10 epochs trained for 20 spends epochs
    11-20 at its floor learning rate (and trained for 5 stops half-way down). So every
    epoch-based scheduler that ends at the config's last epoch ends at ``epochs`` instead, and
    a cosine's period (``T_max``) changes by as much. Iteration-based schedulers (warm-up) and
    epoch-based ones that end earlier are kept as they are.

    Args:
        cfg (Config): the loaded config (``train_cfg.max_epochs``, ``param_scheduler``).
        epochs (int): epochs to train, > 0.
    """
    if epochs <= 0:
        raise ValueError(f'epochs must be > 0, got {epochs}')
    old = cfg.train_cfg.max_epochs
    options = [f'train_cfg.max_epochs={epochs}']
    schedulers = cfg.get('param_scheduler') or []
    indexed = ([('param_scheduler', schedulers)] if isinstance(schedulers, dict) else
               [(f'param_scheduler.{i}', s) for i, s in enumerate(schedulers)])
    for key, scheduler in indexed:
        if not scheduler.get('by_epoch', True) or scheduler.get('end') != old:
            continue
        options.append(f'{key}.end={epochs}')
        if 'T_max' in scheduler:
            options.append(f'{key}.T_max={scheduler["T_max"] + epochs - old}')
    return options
