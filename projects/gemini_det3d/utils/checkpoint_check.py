"""Does a checkpoint hold the weights of this model? One line when it does not.

mmengine loads checkpoints non-strictly: weights of another model (another fusion type,
another width, a LiDAR-only run) load "fine", a warning scrolls past in the log, and the
test then measures a half-random network. Here the weights are loaded with mmengine's strict
load, and its report (missing keys, unexpected keys, torch's size mismatches) becomes one
line that lists the first few keys of each kind with their counts. A file that is no
checkpoint at all is one line too.
"""
import os.path as osp
import re
from typing import Mapping

from ..errors import GeminiInputError
from .safe_checkpoint import UnsafeCheckpointError

SHOWN_KEYS = 3  # keys listed per kind; the counts say how many there are

# the lines of mmengine's ``load_state_dict`` report, and torch's size-mismatch message in it
_MISSING = re.compile(r'^missing keys in source state_dict: (.*)$', re.M)
_UNEXPECTED = re.compile(r'^unexpected key in source state_dict: (.*)$', re.M)
_RESHAPED = re.compile(r'size mismatch for (\S+): copying a param with shape torch\.Size\('
                       r'\[(.*?)\]\) from checkpoint, the shape in current model is '
                       r'torch\.Size\(\[(.*?)\]\)')


class CheckpointMismatchError(GeminiInputError):
    """One line: the checkpoint, and what in it does not fit the model."""


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint on the CPU; ``{'state_dict': {key: Tensor}, 'meta': ...}`` as saved.

    A bare state dict (``{key: Tensor}``) is wrapped as ``{'state_dict': it}``.

    Raises:
        CheckpointMismatchError: no such file, not loadable by torch, or no tensors in it.
        UnsafeCheckpointError: the file would run code while it loads (see
            :mod:`.safe_checkpoint`).
    """
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint
    if not osp.isfile(path):
        raise CheckpointMismatchError(f'{path}: checkpoint file not found')
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001  (pickle / zip / torch errors of every kind)
        reason = ' '.join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointMismatchError(
            f'{path}: not a checkpoint (torch.load failed: {reason})') from None
    if isinstance(checkpoint, Mapping) and 'state_dict' not in checkpoint:
        checkpoint = {'state_dict': checkpoint}
    state = checkpoint.get('state_dict') if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(
            torch.is_tensor(v) for v in state.values()):
        raise CheckpointMismatchError(
            f'{path}: not a model checkpoint (no state_dict of tensors in it)')
    return dict(checkpoint)


def _listed(title: str, keys) -> str:
    more = f', ... ({len(keys) - SHOWN_KEYS} more)' if len(keys) > SHOWN_KEYS else ''
    return f'{len(keys)} {title}: {", ".join(keys[:SHOWN_KEYS])}{more}'


def _shape(dims: str) -> str:
    """``'2, 3'`` (inside torch's ``torch.Size([2, 3])``) -> ``'(2, 3)'``."""
    return str(tuple(int(d) for d in dims.split(',') if d.strip()))


def check_checkpoint_fits(model, checkpoint: dict, path: str, config: str = '') -> None:
    """Load ``checkpoint['state_dict']`` into ``model`` with mmengine's strict load; raise
    unless it has exactly the model's keys and shapes.

    Args:
        model (nn.Module): the built model (a wrapper such as DDP is looked through).
        checkpoint (dict): as :func:`read_checkpoint` returns it.
        path (str): the checkpoint's file, for the message.
        config (str): the config the model was built from, for the message.

    Raises:
        CheckpointMismatchError: ``'{path}: weights of another model (...): N missing in the
            checkpoint: k1, k2, k3, ... (N-3 more); M not in the model: ...; S of another
            shape: key checkpoint (a, b) vs model (c, d), ...'``; keys in the order of the
            model (missing, reshaped) or of the checkpoint (not in the model).
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    model = model.module if is_model_wrapper(model) else model
    try:
        _load_checkpoint_to_model(model, checkpoint, strict=True)
        return
    except RuntimeError as exc:
        report = str(exc)
        if 'do not match exactly' not in report:
            raise
    # mmengine lists unexpected keys module by module; the checkpoint's order reads better
    position = {re.sub(r'^module\.', '', k): i for i, k in enumerate(checkpoint['state_dict'])}
    missing, unexpected = ([k for m in pattern.findall(report) for k in m.split(', ')]
                           for pattern in (_MISSING, _UNEXPECTED))
    unexpected.sort(key=lambda k: position.get(k, len(position)))
    reshaped = [f'{key} checkpoint {_shape(theirs)} vs model {_shape(ours)}'
                for key, theirs, ours in _RESHAPED.findall(report)]
    parts = [_listed(title, keys) for title, keys in (
        ('missing in the checkpoint', missing), ('not in the model', unexpected),
        ('of another shape', reshaped)) if keys]
    target = f'the model of {config}' if config else 'this model'
    raise CheckpointMismatchError(
        f'{path}: weights of another model, they do not fit {target} '
        f'({len(model.state_dict())} tensors): ' + '; '.join(parts))
