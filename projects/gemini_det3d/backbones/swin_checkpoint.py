"""A single-stream Swin checkpoint loaded into the streams of the two-stream backbone.

mmdet's ``SwinTransformer.init_weights`` (``init_cfg=dict(type='Pretrained', checkpoint=PATH)``)
does the loading: it unwraps ``state_dict`` / ``model``, converts official key names
(``swin_converter``, with ``convert_weights``), keeps the ``backbone.`` keys and resizes
relative position tables to the window. Added here is what it does not do: pick
``convert_weights`` from the keys; load a bare ``SwinTransformer`` state dict (mmdet keeps only
``backbone.`` keys; no window resize then); give the official final ``norm`` to the last
stage's norm; skip recomputed buffers (another window's ``relative_position_index`` would stop
the load) and report tensors of another shape (torch refuses them even with ``strict=False``);
adapt the LiDAR stream's patch-embedding kernel; one-line errors naming the file.
"""
import pickle
import zipfile
from functools import partial
from typing import List, Mapping, NamedTuple, Tuple

import torch
from mmdet.models.backbones.swin import SwinTransformer
from mmengine.config import ConfigDict
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from ..errors import GeminiInputError

# deterministic buffers the model computes itself (and whose shape depends on the window)
RECOMPUTED_BUFFER_SUFFIXES = ('relative_position_index', 'attn_mask')
PATCH_EMBED_KERNEL = 'patch_embed.projection.weight'


class SwinCheckpointError(GeminiInputError):
    """Raised, with one line naming the checkpoint, when it holds no usable Swin weights."""


class SwinLoadReport(NamedTuple):
    """Keys that did not fit (``mismatched``: ``'key: checkpoint (s) vs model (s)'``)."""
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]


def read_swin_state_dict(path: str) -> Tuple[str, Mapping[str, Tensor]]:
    """``(style, state_dict)`` of ``path``; style ``'official'`` (the Swin release's names),
    ``'backbone'`` (mmdet names under ``backbone.``) or ``'bare'`` (mmdet names).

    Raises:
        FileNotFoundError: no such file (mmengine's one line naming it).
        SwinCheckpointError: the file is no torch checkpoint, or holds no Swin weights.
    """
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger='silent')
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise SwinCheckpointError(f'{path}: cannot read the checkpoint ({reason})') from None
    state_dict = checkpoint
    if isinstance(checkpoint, Mapping):  # the wrappers mmdet's init_weights unwraps
        state_dict = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    keys = list(state_dict) if isinstance(state_dict, Mapping) else []
    for style, prefixes in (('official', ('layers.', 'patch_embed.proj.')),
                            ('backbone', ('backbone.stages.', 'backbone.patch_embed.')),
                            ('bare', ('stages.', 'patch_embed.'))):
        if any(k.startswith(prefixes) for k in keys):
            return style, state_dict
    raise SwinCheckpointError(
        f'{path}: no Swin weights in it (expected keys like stages.* / patch_embed.*, '
        f'backbone.stages.* or the official layers.* / patch_embed.proj.*)')


def _fit_to_stream(stream: SwinTransformer, state_dict: dict, prefix: str, *hook_args,
                   mismatched: List[str]) -> None:
    """``load_state_dict`` pre-hook of a stream: edits the incoming ``state_dict`` in place."""
    own = stream.state_dict()
    last_norm = f'norm{len(stream.stages) - 1}.'
    for key in list(state_dict):
        value = state_dict.pop(key)
        if key.endswith(RECOMPUTED_BUFFER_SUFFIXES):
            continue
        if key.startswith('norm.'):  # the official release's final norm
            key = last_norm + key[len('norm.'):]
        if key in own and own[key].shape != value.shape:
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} '
                              f'vs model {tuple(own[key].shape)}')
            continue
        state_dict[key] = value


def _record_incompatible(stream, incompatible, report: SwinLoadReport) -> None:
    report.missing.extend(k for k in incompatible.missing_keys
                          if not k.endswith(RECOMPUTED_BUFFER_SUFFIXES))
    report.unexpected.extend(incompatible.unexpected_keys)


def load_swin_checkpoint(stream: SwinTransformer, path: str) -> SwinLoadReport:
    """Load a Swin checkpoint (official or mmdet key names) into ``stream`` with mmdet's
    ``init_weights`` (a bare state dict with ``load_state_dict``), through the fitting hook."""
    style, state_dict = read_swin_state_dict(path)
    report = SwinLoadReport([], [], [])
    hooks = (stream.register_load_state_dict_pre_hook(
                 partial(_fit_to_stream, mismatched=report.mismatched)),
             stream.register_load_state_dict_post_hook(
                 partial(_record_incompatible, report=report)))
    saved = stream.init_cfg, stream.convert_weights
    try:
        if style == 'bare':
            stream.load_state_dict(state_dict, strict=False)
        else:
            del state_dict  # mmdet reads the file itself: do not hold it twice
            stream.init_cfg = ConfigDict(type='Pretrained', checkpoint=path)
            stream.convert_weights = style == 'official'
            try:
                stream.init_weights()
            except KeyError as error:  # mmdet looks up every table key in the model
                raise SwinCheckpointError(
                    f'{path}: {error.args[0]} is not in the model (a Swin of other depths '
                    f'or stages?)') from None
    finally:
        for hook in hooks:
            hook.remove()
        stream.init_cfg, stream.convert_weights = saved
    return report


def adapt_patch_embed_kernel(kernel: Tensor, in_channels: int) -> Tensor:
    """Give an RGB patch-embedding kernel ``[C, 3, k, k]`` another input channel count.

    The kernel averaged over its colour channels is repeated ``in_channels`` times:
    ``[C, in_channels, k, k]``; a kernel that already has ``in_channels`` is returned as is.
    """
    if kernel.shape[1] == in_channels:
        return kernel
    return kernel.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)


@torch.no_grad()
def copy_stream_weights(source: SwinTransformer, target: SwinTransformer) -> None:
    """Give ``target`` the weights of ``source`` (same architecture), its patch-embedding
    kernel adapted to ``target``'s input channels. Stages that ``target`` takes from
    ``source`` (weight sharing: not in its ``state_dict``) are left alone."""
    target_keys = target.state_dict().keys()
    state = {k: v for k, v in source.state_dict().items() if k in target_keys}
    state[PATCH_EMBED_KERNEL] = adapt_patch_embed_kernel(
        state[PATCH_EMBED_KERNEL], target.patch_embed.projection.in_channels)
    target.load_state_dict(state, strict=True)
