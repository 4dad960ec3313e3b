from .atomic_checkpoint_hook import AtomicCheckpointHook
from ..utils.atomic_write import atomic_write_bytes, remove_stale_temp_files
from .atomic_file_backend import AtomicLocalBackend
from .epoch_seed_hook import EpochSeedHook, derive_seed, epoch_worker_init_fn
from .non_finite_loss_guard import NonFiniteLossError, NonFiniteLossGuardHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write_bytes', 'remove_stale_temp_files',
    'EpochSeedHook', 'derive_seed', 'epoch_worker_init_fn', 'NonFiniteLossError',
    'NonFiniteLossGuardHook'
]
