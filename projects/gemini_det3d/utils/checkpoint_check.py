"""Does a checkpoint hold the weights of this model? One line when it does not.

mmengine loads checkpoints non-strictly: weights of another model (another fusion type,
another width, a LiDAR-only run) load "fine", a warning scrolls past in the log, and the
test then measures a half-random network. Here the checkpoint's ``state_dict`` is compared
with the model's, key by key and shape by shape, before it is used: anything missing,
unexpected or of another shape is an error that lists the first few keys of each kind
with their counts. A file that is no checkpoint at all is one line too.
"""
import os.path as osp
from typing import Dict, List, Mapping

from ..errors import GeminiInputError

SHOWN_KEYS = 3  # keys listed per kind; the counts say how many there are


class CheckpointMismatchError(GeminiInputError):
    """One line: the checkpoint, and what in it does not fit the model."""


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint on the CPU; ``{'state_dict': {key: Tensor}, 'meta': ...}`` as saved.

    A bare state dict (``{key: Tensor}``) is wrapped as ``{'state_dict': it}``.

    Raises:
        CheckpointMismatchError: no such file, not loadable by torch, or no tensors in it.
    """
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint
    if not osp.isfile(path):
        raise CheckpointMismatchError(f'{path}: checkpoint file not found')
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
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


def _strip_wrapper_prefix(state: Mapping) -> Dict:
    """``module.x`` -> ``x``, as mmengine's loader does for (distributed) wrapper keys."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _listed(title: str, keys: List[str]) -> str:
    more = f', ... ({len(keys) - SHOWN_KEYS} more)' if len(keys) > SHOWN_KEYS else ''
    return f'{len(keys)} {title}: {", ".join(keys[:SHOWN_KEYS])}{more}'


def check_checkpoint_fits(model, checkpoint: dict, path: str, config: str = '') -> None:
    """Raise unless ``checkpoint['state_dict']`` has exactly the model's keys and shapes.

    Args:
        model (nn.Module): the built model (a wrapper such as DDP is looked through).
        checkpoint (dict): as :func:`read_checkpoint` returns it.
        path (str): the checkpoint's file, for the message.
        config (str): the config the model was built from, for the message.

    Raises:
        CheckpointMismatchError: ``'{path}: weights of another model (...): N missing in the
            checkpoint: k1, k2, k3, ... (N-3 more); M not in the model: ...; S of another
            shape: key checkpoint (a, b) vs model (c, d), ...'``.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    theirs = _strip_wrapper_prefix(checkpoint['state_dict'])
    ours = model.state_dict()
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    reshaped = [f'{k} checkpoint {tuple(theirs[k].shape)} vs model {tuple(v.shape)}'
                for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape]
    if not (missing or unexpected or reshaped):
        return
    parts = [_listed(title, keys) for title, keys in (
        ('missing in the checkpoint', missing), ('not in the model', unexpected),
        ('of another shape', reshaped)) if keys]
    target = f'the model of {config}' if config else 'this model'
    raise CheckpointMismatchError(
        f'{path}: weights of another model, they do not fit {target} '
        f'({len(ours)} tensors): ' + '; '.join(parts))

