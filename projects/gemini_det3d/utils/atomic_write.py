"""All-or-nothing local file writes: a reader sees the old file or the new one, never half.

The bytes go to a temporary file in the same directory, are flushed and fsync'ed, and only
then renamed over the final name with ``os.replace`` (atomic within one file system); the
directory is fsync'ed too so that the rename itself survives a power loss. Used for
checkpoints (:mod:`gemini_det3d.engine.atomic_file_backend`) and the KITTI files the project
writes (:mod:`gemini_det3d.data.kitti_io`).
"""
import os
import os.path as osp
import re
import secrets
from pathlib import Path
from typing import Union

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
