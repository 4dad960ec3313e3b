"""mmengine's CheckpointHook, made crash-safe: a kill at any moment leaves a usable checkpoint.

Three things in ``CheckpointHook._save_checkpoint_with_step`` (mmengine 0.10) can leave a
work dir that ``--resume`` cannot use after a SIGKILL or power loss:
1. the checkpoint bytes are written in place (``LocalBackend.put``): a truncated file;
2. the ``last_checkpoint`` pointer is written with a plain ``open(..., 'w')``: an empty
   pointer if the kill lands between the truncation and the write;
3. the oldest kept checkpoint is deleted *before* the new one is written: with
   ``max_keep_ckpts=1`` that is the very checkpoint ``last_checkpoint`` points to.
Here checkpoints go through the ``'atomic_local'`` backend (unless ``backend_args`` says
otherwise), the pointer is replaced atomically and only once the checkpoint is complete,
and outdated checkpoints are removed last.
"""
import os.path as osp
from collections import deque

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmdet3d.registry import HOOKS
from ..utils.atomic_write import atomic_write_bytes, remove_stale_temp_files
from . import atomic_file_backend  # noqa: F401  (registers the 'atomic_local' backend)

ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints and ``last_checkpoint`` pointer are never
    half-written, and which removes outdated checkpoints only after the new one is in place.

    Takes ``CheckpointHook``'s arguments. Without ``backend_args`` / ``file_client_args``,
    a local ``out_dir`` (the default: the work dir) is written with the ``'atomic_local'``
    backend; a remote ``out_dir`` keeps mmengine's choice of backend.
    """

    def __init__(self, *args, out_dir=None, file_client_args=None, backend_args=None, **kwargs):
        if (backend_args is None and file_client_args is None
                and (out_dir is None or '://' not in str(out_dir))):
            backend_args = dict(ATOMIC_BACKEND_ARGS)
        super().__init__(*args, out_dir=out_dir, file_client_args=file_client_args,
                         backend_args=backend_args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process():
            # temporary files of a run killed while saving (they can be checkpoint-sized)
            for directory in {runner.work_dir, self.out_dir}:
                if '://' not in str(directory):
                    for path in remove_stale_temp_files(directory):
                        runner.logger.info(f'removed {path}, left by an interrupted save')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # Same bookkeeping as mmengine's (the saved message hub must already hold the new
        # keep_ckpt_ids / last_ckpt, so that a resumed run prunes the right files), but the
        # outdated checkpoint is deleted at the end, and a failed save changes nothing.
        hub = runner.message_hub
        kept = list(getattr(self, 'keep_ckpt_ids', ()))
        previous = dict(keep_ckpt_ids=hub.runtime_info.get('keep_ckpt_ids'),
                        last_ckpt=hub.runtime_info.get('last_ckpt'))
        new_kept, outdated_step = kept, None
        if self.max_keep_ckpts > 0 and not (kept and kept[-1] == step):
            new_kept = kept + [step]
            if len(new_kept) > self.max_keep_ckpts:
                outdated_step = new_kept.pop(0)
            hub.update_info('keep_ckpt_ids', new_kept)

        ckpt_filename = self.filename_tmpl.format(step)
        last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        hub.update_info('last_ckpt', last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except BaseException:
            for key, value in previous.items():
                if value is None:
                    hub.runtime_info.pop(key, None)
                else:
                    hub.update_info(key, value)
            raise
        self.last_ckpt = last_ckpt
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = deque(new_kept, self.max_keep_ckpts)

        # model-parallel saving gathers shards from all ranks; only rank 0 touches files
        if not is_main_process():
            return
        atomic_write_bytes(str(last_ckpt).encode(), osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated_step is not None:
            self._remove_checkpoint(self.filename_tmpl.format(outdated_step))

    def _remove_checkpoint(self, filename: str) -> None:
        path = self.file_backend.join_path(self.out_dir, filename)
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are directories
            self.file_backend.rmtree(path)
