"""Config loading with clear errors: a missing or broken file, or a model that does not fit
its own pipelines (see :mod:`.model_config_check`), is one line before anything is built."""
import os.path as osp

from ..errors import GeminiInputError


def load_config(path, cfg_options=None):
    """``mmengine.Config.fromfile`` plus ``--cfg-options``, then the model's
    consistency checks; a missing, broken or inconsistent config is one ``GeminiInputError``."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise GeminiInputError(f'{path}: config file not found')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # noqa: BLE001  (syntax errors, missing _base_ files, ...)
        raise GeminiInputError(f'{path}: cannot load config: {exc}'.splitlines()[0]) from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    from .model_config_check import check_model_config
    check_model_config(cfg, path)
    return cfg
