"""A short exclusive write lock on a project folder, shared by every process that edits it.

Farm tasks (and cluster runs) finish at any moment and each adds a take to the same project.json.
Each does a read-modify-write: take the lock, re-read project.json, add its take, save atomically,
release. The lock is an OS file lock on `<project>/.write.lock` taken through `filelock` (flock on
POSIX, msvcrt.locking on Windows), so a process killed while holding it (kill -9) releases it with
its file descriptors: no stale lock is ever left behind. The lock file is kept on release
(preserve_lock_file): older versions of the studio lock that same file by name, and deleting it
while one of them waits would let two processes in at once. No soft (marker-file) fallback either:
a marker left by a killed process would block the project.

It is held for a few milliseconds (one read and one save), not for a whole session: a session's
ownership of a project is another matter (ownership.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ..core.errors import ProjectError

LOCK_FILE = ".write.lock"
POLL_S = 0.02


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_FILE


@contextlib.contextmanager
def project_write_lock(folder: str | os.PathLike, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold the project's write lock for the `with` block; waits up to `timeout_s` for it.

    Each call opens its own descriptor, so threads of one process exclude each other too.
    Raises ProjectError when the lock cannot be had in time or the folder cannot hold a lock file.
    """
    path = lock_path(folder)
    # No mode: the lock file is created through the umask, like every file we write.
    lock = FileLock(path, timeout=timeout_s, poll_interval=POLL_S, preserve_lock_file=True, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        raise ProjectError(f"{Path(folder)} stayed locked by another process for {timeout_s:.0f} s "
                           f"(lock file {path}); try again when it has finished.") from None
    except OSError as exc:
        raise ProjectError(f"Cannot create the lock file {path}: {exc.strerror or exc}.") from None
    try:
        yield
    finally:
        lock.release()
