"""A short exclusive write lock on a project folder, shared by every process that edits it.

Farm tasks (and cluster runs) finish at any moment and each adds a take to the same project.json.
Each does a read-modify-write: take the lock, re-read project.json, add its take, save atomically,
release. The lock is an OS file lock on `<project>/.write.lock` (fcntl.flock on POSIX,
msvcrt.locking on Windows), so a process killed while holding it (kill -9) releases it with its
file descriptors: no stale lock is ever left behind. The lock file itself is never deleted, because
deleting a lock file another process is waiting on would let two processes in at once.

It is held for a few milliseconds (one read and one save), not for a whole session: a session's
ownership of a project is another matter (ownership.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import ProjectError

LOCK_FILE = ".write.lock"
POLL_S = 0.02


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_FILE


@contextlib.contextmanager
def project_write_lock(folder: str | os.PathLike, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold the project's write lock for the `with` block; waits up to `timeout_s` for it.

    Each call opens its own descriptor, so threads of one process exclude each other too.
    Raises ProjectError when the lock cannot be had in time or the folder cannot hold a lock file.
    """
    path = lock_path(folder)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
    except OSError as exc:
        raise ProjectError(f"Cannot create the lock file {path}: {exc.strerror or exc}.") from None
    try:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise ProjectError(f"{Path(folder)} stayed locked by another process for {timeout_s:.0f} s "
                                   f"(lock file {path}); try again when it has finished.")
            time.sleep(POLL_S)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
