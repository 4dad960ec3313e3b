"""Local file writes that are all-or-nothing: a reader sees the old file or the new one.

mmengine's ``LocalBackend.put`` opens the final path with ``'wb'`` and writes into it, so
a process killed while saving a checkpoint leaves a truncated ``epoch_N.pth`` behind
(and, when the same name is re-saved, destroys the good copy). Here the bytes go to a
temporary file in the same directory, are flushed and fsync'ed, and only then renamed
over the final name with ``os.replace`` (atomic within one file system); the directory
is fsync'ed too so that the rename itself survives a power loss.

The backend is registered in mmengine's file-backend registry as ``'atomic_local'``:
``backend_args=dict(backend='atomic_local')`` selects it wherever mmengine takes
``backend_args`` (``CheckpointHook``, ``Runner.save_checkpoint``, ``mmengine.fileio.put``).
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from ..utils.atomic_write import atomic_write_bytes


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` replace files atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend)
