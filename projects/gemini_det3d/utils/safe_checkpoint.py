"""Local checkpoints load with torch's ``weights_only`` unpickler, which runs no code.

A pickle can name any importable function and have it called while the file loads;
``torch.load(..., weights_only=True)`` only builds tensors, containers, numbers, strings and
the globals it is told are safe. A training checkpoint of mmengine 0.10.7 holds a few more
than torch allows by default: its message hub keeps :class:`~mmengine.logging.HistoryBuffer`
objects (numpy arrays inside, and their statistics functions, which pickle protocol 2 writes
as ``getattr(HistoryBuffer, 'mean')``), and numpy scalars appear in the runtime info and in
mmdet3d's ``dataset_meta``. :data:`SAFE_GLOBALS` allows exactly those, ``getattr`` only in
that one use. A file that needs any other global is refused with one line naming the file and
the global (:class:`UnsafeCheckpointError`) before its pickle is unpickled.

:func:`install` registers :func:`load_local_checkpoint` as mmengine's ``CheckpointLoader``
scheme for local files, so ``Runner`` (``load_from``, ``resume``),
``mmengine.runner.load_checkpoint`` and mmdet3d's ``init_model`` all read through it.
"""
import os.path as osp
import pickle
import re

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from ..errors import GeminiInputError

# the statistics HistoryBuffer registers itself (mmengine 0.10.7 ``_set_default_statistics``)
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
# a HistoryBuffer's value and count arrays; numpy str scalars among the keys of mmdet3d's
# KITTI ``dataset_meta['categories']``, which mmengine saves in ``meta``
CHECKPOINT_DTYPES = ('float64', 'int64', 'str')
NOT_A_STATISTIC = 'is not a HistoryBuffer statistic'


class UnsafeCheckpointError(GeminiInputError):
    """One line: the checkpoint, and a global in it that loading would call."""


def history_buffer_statistic(owner, name: str):
    """``getattr`` as a HistoryBuffer's pickle uses it, and for nothing else."""
    if owner is not HistoryBuffer or name not in HISTORY_BUFFER_STATISTICS:
        raise pickle.UnpicklingError(
            f'getattr({getattr(owner, "__qualname__", owner)}, {name!r}) {NOT_A_STATISTIC}')
    return getattr(owner, name)


def _numpy_globals():
    """numpy's array and scalar rebuild functions and the dtypes a message hub's arrays and
    scalars have, under the module names a numpy 1.x writer (``numpy.core``) and a numpy 2.x
    writer (``numpy._core``) pickle them."""
    from numpy.core import multiarray
    entries = [np.ndarray, np.dtype] + [type(np.dtype(t)) for t in CHECKPOINT_DTYPES]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        entries += [(fn, f'{package}.multiarray.{fn.__name__}')
                    for package in ('numpy.core', 'numpy._core')]
    return entries


SAFE_GLOBALS = [HistoryBuffer, (history_buffer_statistic, 'builtins.getattr'), *_numpy_globals()]


def _unsafe_globals(filename: str):
    """Globals of a zip checkpoint that the allow-list does not cover (a static scan of its
    pickle: nothing is called); ``[]`` for a file torch cannot scan (legacy format, no zip)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # noqa: BLE001  (not a zip / torchscript / damaged: the load decides)
        return []


def _refusal(filename: str, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'{filename}: refused to load: {what}; a checkpoint holds tensors and the few types '
        'mmengine saves, anything else could run code while the file loads')


def load_local_checkpoint(filename: str, map_location=None):
    """``torch.load(filename, weights_only=True)`` with :data:`SAFE_GLOBALS` allowed.

    Raises:
        FileNotFoundError: no such file (as mmengine's own local loader).
        UnsafeCheckpointError: the file names a global outside the allow-list.
        pickle.UnpicklingError: what stopped the weights-only unpickler in a file that is no
            checkpoint (or a damaged one).
        Exception: whatever else torch raises for a file that is no checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        unsafe = _unsafe_globals(filename)
        if unsafe:
            raise _refusal(filename, f'it needs {", ".join(unsafe)}')
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            # the unpickler stopped at a global or a call the scan cannot see (a file in
            # torch's legacy format, ``getattr`` used for more than a HistoryBuffer statistic),
            # or at something that is no safety matter (a plain pickle, a damaged file)
            reason = _unpickler_reason(exc)
            name = re.search(r'GLOBAL (\S+) was not an allowed global', reason)
            if name:
                raise _refusal(filename, f'it needs {name.group(1)}') from None
            if 'reduce for unrecognized function' in reason or NOT_A_STATISTIC in reason:
                raise _refusal(filename, reason) from None
            raise pickle.UnpicklingError(f'weights-only load: {reason}') from None


def _unpickler_reason(exc: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only error that says what stopped the unpickler."""
    lines = str(exc).split('WeightsUnpickler error: ', 1)[-1].splitlines()
    return next((line.strip() for line in lines if line.strip()), str(exc))


def install() -> None:
    """Make :func:`load_local_checkpoint` mmengine's loader for local checkpoint files."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
