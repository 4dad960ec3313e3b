"""Reading a single-stream Swin checkpoint for the two-stream backbone.

Accepts what users have: mmdet's key names (a bare ``SwinTransformer`` state dict, or a
detector checkpoint whose backbone keys start with ``backbone.``) and the official Swin
release's key names (``layers.*``, ``patch_embed.proj``, under ``'model'``), which mmdet's
own ``swin_converter`` translates (its final ``norm`` becomes the last stage's output
norm; the other stages' output norms are not in an official release and stay as
initialised). The result always has the key names of mmdet's
``SwinTransformer``, i.e. of one stream of :class:`DualSwinTransformer`.
"""
import pickle
import zipfile
from collections import OrderedDict
from typing import Dict, Mapping

import torch
import torch.nn.functional as F
from mmdet.models.backbones.swin import swin_converter
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from ..errors import GeminiInputError

# deterministic buffers the model computes itself (and whose shape depends on the window)
RECOMPUTED_BUFFER_SUFFIXES = ('relative_position_index', 'attn_mask')


class SwinCheckpointError(GeminiInputError):
    """Raised, with one line naming the checkpoint, when it holds no usable Swin weights."""


def _is_official_swin(state_dict: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(('layers.', 'patch_embed.proj.')) for k in state_dict)


def _strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())


def _official_final_norm_to_last_stage(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The official release's ``norm.*`` normalises the last stage's output: that is what
    mmdet calls ``norm{last stage}``, which ``swin_converter`` leaves unmapped."""
    stages = {int(k.split('.')[1]) for k in state_dict if k.startswith('layers.')}
    if not stages:
        return dict(state_dict)
    last = max(stages)
    return OrderedDict((f'norm{last}.' + k[len('norm.'):] if k.startswith('norm.') else k, v)
                       for k, v in state_dict.items())


def read_single_stream_swin(path: str, logger=None) -> Dict[str, Tensor]:
    """Load ``path`` and return its Swin weights under mmdet ``SwinTransformer`` names.

    Recomputed buffers (``relative_position_index``, ``attn_mask``) are dropped.

    Raises:
        FileNotFoundError: no such file.
        SwinCheckpointError: the file is no torch checkpoint, or holds no Swin weights.
    """
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger=logger)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise SwinCheckpointError(f'{path}: cannot read the checkpoint ({reason})') from None
    state_dict = checkpoint
    if isinstance(checkpoint, Mapping):
        for wrapper_key in ('state_dict', 'model'):
            if isinstance(checkpoint.get(wrapper_key), Mapping):
                state_dict = checkpoint[wrapper_key]
                break
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise SwinCheckpointError(f'{path}: no state dict found in the checkpoint')
    state_dict = _strip_prefix(state_dict, 'module.')
    if _is_official_swin(state_dict):
        state_dict = _official_final_norm_to_last_stage(state_dict)
        state_dict = swin_converter(state_dict)  # -> mmdet names, under 'backbone.'
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = OrderedDict((k[len('backbone.'):], v) for k, v in state_dict.items()
                                 if k.startswith('backbone.'))
    state_dict = OrderedDict((k, v) for k, v in state_dict.items()
                             if not k.endswith(RECOMPUTED_BUFFER_SUFFIXES))
    if not any(k.startswith(('stages.', 'patch_embed.')) for k in state_dict):
        raise SwinCheckpointError(
            f'{path}: no Swin weights in it (expected keys like stages.* / patch_embed.* '
            f'or the official layers.* / patch_embed.proj.*)')
    return state_dict


def adapt_patch_embed_kernel(kernel: Tensor, in_channels: int) -> Tensor:
    """Give an RGB patch-embedding kernel ``[C, 3, k, k]`` another input channel count.

    The kernel averaged over its colour channels is repeated ``in_channels`` times:
    ``[C, in_channels, k, k]``; a kernel that already has ``in_channels`` is returned as is.
    """
    if kernel.shape[1] == in_channels:
        return kernel
    return kernel.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)


def resize_relative_position_table(table: Tensor, num_rows: int) -> Tensor:
    """Resize a relative position bias table ``[(2w-1)^2, heads]`` to ``num_rows`` rows.

    Checkpoints trained with another window size have another table size; the table is a
    (2w-1) x (2w-1) grid per head, resized bicubically.
    """
    if table.shape[0] == num_rows:
        return table
    side_in, side_out = round(table.shape[0]**0.5), round(num_rows**0.5)
    heads = table.shape[1]
    grid = table.t().reshape(1, heads, side_in, side_in)
    grid = F.interpolate(grid, size=(side_out, side_out), mode='bicubic', align_corners=False)
    return grid.reshape(heads, num_rows).t().contiguous()


@torch.no_grad()
def fit_to_stream(state_dict: Mapping[str, Tensor], stream_state: Mapping[str, Tensor],
                  in_channels: int) -> Dict[str, Tensor]:
    """Adapt single-stream weights to one stream: its input channels and window size.

    Args:
        state_dict: mmdet-named Swin weights (from :func:`read_single_stream_swin`).
        stream_state: the stream's own ``state_dict()`` (for target shapes).
        in_channels: the stream's input channels (3 for RGB, the LiDAR grid's count).
    """
    fitted = OrderedDict()
    for key, value in state_dict.items():
        if key == 'patch_embed.projection.weight':
            value = adapt_patch_embed_kernel(value, in_channels)
        elif (key.endswith('relative_position_bias_table') and key in stream_state
              and stream_state[key].shape[1] == value.shape[1]):  # same heads, other window
            value = resize_relative_position_table(value, stream_state[key].shape[0])
        fitted[key] = value
    return fitted
