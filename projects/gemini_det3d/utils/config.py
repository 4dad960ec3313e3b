"""Config loading with clear errors."""
import os.path as osp

from ..errors import GeminiInputError


def load_config(path, cfg_options=None):
    """``mmengine.Config.fromfile`` plus ``--cfg-options``; a missing or broken config is one line."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise GeminiInputError(f'{path}: config file not found')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # noqa: BLE001  (syntax errors, missing _base_ files, ...)
        raise GeminiInputError(f'{path}: cannot load config: {exc}'.splitlines()[0]) from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
