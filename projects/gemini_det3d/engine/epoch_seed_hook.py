"""Make every training epoch's randomness a function of (seed, epoch) alone.

mmengine seeds python / numpy / torch once, when the Runner is built, and a resumed run
reloads weights, optimizer, schedulers and message hub but not those generators. So after
``--resume`` from ``epoch_2.pth`` epoch 3 draws its augmentations (RandomFlip3D,
GlobalRotScaleTrans, RandomResize, PointShuffle: numpy / python RNG), its dropout and its
data-loader base seed (torch RNG) from the freshly seeded generators, while the
uninterrupted run draws them from the generators as two epochs (and the validations in
between) left them: the two runs diverge from the first replayed iteration.

Instead of carrying generator states through checkpoints (which would still depend on
whatever ran between the save and the next epoch, e.g. validation), this hook re-seeds
all generators at the start of every epoch from ``(runner.seed, epoch)``; data-loader
workers, which mmengine seeds with the same value every epoch, are re-seeded from
``(runner.seed, epoch, rank, worker_id)``. The sampler's shuffling seed, which mmengine
draws anew when the config has no seed, is stored in the checkpoint and put back on
resume. A run killed in the middle of an epoch then replays that epoch exactly from the
last per-epoch checkpoint.

Limits: epoch-based loops only (an iteration-based loop has one "epoch"). Persistent
workers are started once, so their generators run on across epochs and a resumed run's
fresh workers cannot match them: exact replay needs ``persistent_workers=False`` (or
``num_workers=0``) in the train data loader, and the hook says so in the log.
"""
import random
from functools import partial

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


def derive_seed(seed: int, *stream: int) -> int:
    """A 32-bit seed for the random stream named by ``(seed, *stream)``.

    ``numpy.random.SeedSequence`` mixes the numbers, so neighbouring epochs / workers get
    unrelated streams (unlike ``seed + epoch``, which makes epoch e of seed s the same as
    epoch e-1 of seed s+1).
    """
    entropy = [int(seed) & 0xFFFF_FFFF_FFFF_FFFF, *(int(s) for s in stream)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (torch: CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_worker_init_fn(worker_id: int, seed: int, epoch: int, rank: int) -> None:
    """``DataLoader`` ``worker_init_fn``: seed worker ``worker_id`` of ``rank`` for ``epoch``."""
    seed_everything(derive_seed(seed, epoch, rank, worker_id))


def _sampler(loader):
    """The loader's index sampler if it is seeded per epoch (mmengine's DefaultSampler)."""
    for sampler in (getattr(loader, 'sampler', None),
                    getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)):
        if hasattr(sampler, 'set_epoch') and hasattr(sampler, 'seed'):
            return sampler
    return None


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Re-seed all random generators at the start of each training epoch.

    Main process: python / numpy / torch from ``derive_seed(runner.seed, epoch)``.
    Workers: ``derive_seed(runner.seed, epoch, rank, worker_id)``, installed as the train
    loader's ``worker_init_fn`` before the epoch's workers start.
    """

    # first at the start of an epoch: other hooks may already draw random numbers there
    priority = 'VERY_HIGH'

    def __init__(self):
        self._resumed_sampler_seed = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sampler = _sampler(runner.train_dataloader)
        if sampler is not None:
            checkpoint['meta']['sampler_seed'] = sampler.seed

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_sampler_seed = checkpoint.get('meta', {}).get('sampler_seed')

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        sampler = _sampler(loader)
        # after_load_checkpoint also runs for `load_from` (fine-tuning from epoch 0): only a
        # resumed run (epoch > 0) takes the interrupted run's shuffling over
        if (sampler is not None and self._resumed_sampler_seed is not None
                and runner.epoch > 0 and sampler.seed != self._resumed_sampler_seed):
            runner.logger.info(f'sampler seed {sampler.seed} -> {self._resumed_sampler_seed} '
                               '(the resumed run\'s)')
            sampler.seed = self._resumed_sampler_seed
        if loader.num_workers > 0 and loader.persistent_workers:
            runner.logger.warning(
                'EpochSeedHook: train_dataloader has persistent_workers=True, whose random '
                'generators run on across epochs; a resumed run will not replay their '
                'augmentations exactly (set persistent_workers=False for exact resume)')

    def before_train_epoch(self, runner) -> None:
        seed_everything(derive_seed(runner.seed, runner.epoch))
        loader = runner.train_loop.dataloader
        if loader.num_workers > 0:
            # read by the DataLoader when this epoch's iterator starts its workers
            loader.worker_init_fn = partial(epoch_worker_init_fn, seed=runner.seed,
                                            epoch=runner.epoch, rank=get_rank())
