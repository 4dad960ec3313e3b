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
import os
import os.path as osp
import re
import secrets
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

# '.epoch_3.pth.<writer pid>.<random>.tmp': hidden, next to its final name, and it says
# which process wrote it so that leftovers of killed writers can be told apart
_TEMP_NAME = re.compile(r'^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that ``filepath`` is never seen half-written.

    On any failure (an exception, or the process being killed) ``filepath`` keeps its
    previous content; the temporary file is removed on exceptions (a killed writer's is
    removed later by :func:`remove_stale_temp_files`).
    """
    filepath = osp.abspath(os.fspath(filepath))
    directory = osp.dirname(filepath)
    os.makedirs(directory, exist_ok=True)
    temp = osp.join(directory,
                    f'.{osp.basename(filepath)}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    # os.open with 0o666 (not tempfile.mkstemp's 0o600): the file gets the usual umask mode
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, filepath)
    except BaseException:
        try:
            os.remove(temp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def remove_stale_temp_files(directory: Union[str, Path]) -> list:
    """Remove temporary files that killed writers left in ``directory``.

    Only names made by :func:`atomic_write_bytes` whose writer process is gone are
    removed (a live writer's file is in use). Returns the removed paths.
    """
    directory = os.fspath(directory)
    if not osp.isdir(directory):
        return []
    removed = []
    for name in os.listdir(directory):
        match = _TEMP_NAME.match(name)
        if match is None or _process_alive(int(match['pid'])):
            continue
        path = osp.join(directory, name)
        try:
            os.remove(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` replace files atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend)
