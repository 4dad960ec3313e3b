"""Load the part of another detector's checkpoint that fits this model, and say what did not.

The point branch (``pts_voxel_encoder``, ``pts_middle_encoder``, ``pts_backbone``, ``pts_neck``,
``pts_bbox_head``) can start from an mmdet3d MVX-Net or SECOND KITTI checkpoint whose image
branch (a ResNet, or none) has nothing to give a Swin. mmengine's ``load_from`` loads every
key that fits, a ResNet FPN's 3 x 3 convolutions into this model's FPN included, and logs
every other key in a long warning. Here only the keys under one prefix are
considered, those this model has with the same shape are loaded, and one log line counts and
names the rest: of another shape, not in the model, in the model but not in the checkpoint.

Sparse-convolution kernels are compared as mmdet3d loads them: a checkpoint that does not mark
its spconv modules as version 2 (mmdet3d's own KITTI checkpoints, saved with mmcv's spconv)
holds them as ``[D, H, W, in, out]``, which mmdet3d permutes to spconv 2's
``[out, D, H, W, in]`` (``mmdet3d/models/layers/spconv/overwrite_spconv/write_spconv2.py``).
"""
import logging
from collections import Counter
from typing import List, NamedTuple

from mmengine.logging import print_log
import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from ..errors import GeminiInputError

SHOWN_KEYS = 3  # keys named per kind; the counts say how many there are


class PartialLoadReport(NamedTuple):
    """What :func:`load_matching_tensors` did with the checkpoint's keys under the prefix."""
    loaded: List[str]
    reshaped: List[str]  # 'key: checkpoint (s) vs model (s)'
    not_in_model: List[str]
    not_in_checkpoint: List[str]
    other_prefixes: Counter  # top-level module name -> key count, not considered


def _named(keys: List[str]) -> str:
    shown = ', '.join(keys[:SHOWN_KEYS])
    return shown + (', ...' if len(keys) > SHOWN_KEYS else '')


def _is_sparse_module(module: nn.Module) -> bool:
    try:
        from spconv.pytorch import SparseModule
    except ImportError:
        return False
    return isinstance(module, SparseModule)


def _as_loaded(model: nn.Module, state: dict, key: str, value: Tensor) -> Tensor:
    """``value`` in the layout mmdet3d gives it when loading ``key`` into ``model``."""
    module_name, _, name = key.rpartition('.')
    try:
        module = model.get_submodule(module_name)
    except AttributeError:
        return value
    version = getattr(state, '_metadata', {}).get(module_name, {}).get('version')
    if name == 'weight' and _is_sparse_module(module) and version != 2 and value.dim() > 1:
        return value.permute(value.dim() - 1, *range(value.dim() - 1))
    return value


def load_matching_tensors(model: nn.Module, path: str, prefix: str = 'pts_') -> PartialLoadReport:
    """Copy the tensors of checkpoint ``path`` whose key starts with ``prefix`` and that
    ``model`` has with the same shape into ``model``; log one line of what was and was not.

    Raises:
        GeminiInputError: one line naming ``path`` when it cannot be read.
    """
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger='silent')
    except Exception as error:  # noqa: BLE001  (missing file, no torch file, network)
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise GeminiInputError(f'{path}: cannot load the point-branch checkpoint ({reason})') \
            from None
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    own = model.state_dict()
    report = PartialLoadReport([], [], [], [], Counter())
    fitting = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            report.other_prefixes[key.split('.')[0]] += 1
        elif key not in own:
            report.not_in_model.append(key)
        elif own[key].shape != _as_loaded(model, state, key, value).shape:
            report.reshaped.append(f'{key}: checkpoint {tuple(value.shape)} '
                                   f'vs model {tuple(own[key].shape)}')
        else:
            fitting[key] = _as_loaded(model, state, key, value)
            report.loaded.append(key)
    report.not_in_checkpoint.extend(
        k for k in own if k.startswith(prefix) and k not in state)
    with torch.no_grad():  # state_dict()'s tensors share the parameters' storage
        for key, value in fitting.items():
            own[key].copy_(value)

    considered = len(state) - sum(report.other_prefixes.values())
    parts = [f'{path}: loaded {len(report.loaded)} of its {considered} {prefix}* tensors']
    for title, keys in (('of another shape', report.reshaped),
                        ('not in this model', report.not_in_model),
                        (f'model {prefix}* tensors not in the checkpoint (kept their init)',
                         report.not_in_checkpoint)):
        if keys:
            parts.append(f'{len(keys)} {title}: {_named(keys)}')
    if report.other_prefixes:
        parts.append('ignored: ' + ', '.join(f'{name} ({count})' for name, count
                                             in sorted(report.other_prefixes.items())))
    skipped = report.reshaped or report.not_in_model or report.not_in_checkpoint
    level = logging.WARNING if skipped else logging.INFO
    print_log('; '.join(parts), logger='current', level=level)
    return report
