"""A short exclusive write lock on a project folder, shared by every process that edits it.

Farm tasks (and cluster runs) finish at any moment and each adds a take to the same project.json.
Each does a read-modify-write: take the lock, re-read project.json, add its take, save atomically,
release. The lock is an OS file lock on `<project>/.write.lock` (fcntl.flock on POSIX,
msvcrt.locking on Windows), so a process killed while holding it (kill -9) releases it with its
file descriptors: no stale lock is ever left behind. The lock file itself is never deleted, because
deleting a lock file another process is waiting on would let two processes in at once.

It is held for a few milliseconds (one read and one save), not for a whole session: a session's
ownership of a project is another matter (ownership.py).

Found in a project, the lock file is outside text: a link (even a dangling one) is never followed
and anything but a plain file is refused. A waiter names who holds the lock (Linux: the process in
/proc/locks; elsewhere the record the holder writes at the start of the lock file) and gives up
when one holder keeps it past STUCK_HOLDER_S.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import ProjectError, ProjectLocked

LOCK_FILE = ".write.lock"
POLL_S = 0.02
# One holder keeps the lock for one read and one save (milliseconds). A holder that keeps it this
# long is stuck (or the lock was planted): the waiter gives up with ProjectLocked (exit 3) naming it,
# instead of waiting out `timeout_s`. A queue of farm tasks each holding it briefly keeps waiting.
STUCK_HOLDER_S = 3.0
RECORD_BYTES = 4096  # the holder's record at the start of the lock file (POSIX), read at most this much
_WINDOWS = sys.platform == "win32"


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


def _open_lock_file(path: Path) -> int:
    """The lock file's descriptor; a link or anything but a regular file is refused, never followed
    (a dangling `.write.lock` link would otherwise create its target outside the project)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    if _WINDOWS and os.path.islink(path):
        raise ProjectError(f"The lock file {path} is a link; a lock file must be a plain file. Delete it and try again.")
    try:
        fd = os.open(path, flags, 0o666)  # the umask applies
    except OSError as exc:
        if os.path.islink(path):
            raise ProjectError(f"The lock file {path} is a link; a lock file must be a plain file. "
                               "Delete it and try again.") from None
        if os.path.isdir(path):
            raise ProjectError(f"The lock file {path} is a folder; delete it and try again.") from None
        raise ProjectError(f"Cannot create the lock file {path}: {exc.strerror or exc}.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ProjectError(f"The lock file {path} is not a plain file (a pipe, a device or a socket); "
                               "delete it and try again.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _clip(value: object, limit: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _write_record(fd: int, what: str) -> None:
    """Say who holds the lock, in the lock file itself (POSIX; Windows locks the bytes being read)."""
    if _WINDOWS:
        return
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what}).encode()[:RECORD_BYTES]
    with contextlib.suppress(OSError):  # a full disk: the holder's own save says so clearly
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)


def _read_record(fd: int) -> dict:
    if _WINDOWS:
        return {}
    try:
        data = json.loads(os.pread(fd, RECORD_BYTES, 0))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _flock_holders(fd: int) -> list[int]:
    """PIDs holding a flock on the file behind `fd` (Linux /proc/locks); [] where that cannot be read."""
    try:
        info = os.fstat(fd)
        inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.readlines(1 << 20)
    except (OSError, AttributeError, ValueError):
        return []
    holders = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2150745 0 EOF"; lines with "->" are waiters
        if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields and fields[5] == inode:
            if fields[4].isdigit() and len(fields[4]) <= 10:
                holders.append(int(fields[4]))
    return holders


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read(4096).split(b"\0")
    except OSError:
        return ""
    return _clip(" ".join(w.decode("utf-8", "replace") for w in words if w))


def lock_holder(fd: int) -> tuple[object, str]:
    """(an identity that changes when another process takes the lock, a description of the holder)."""
    record = _read_record(fd)
    pids = _flock_holders(fd)
    if pids:
        pid = pids[0]
        ours = record.get("pid") == pid and record.get("host") == socket.gethostname()
        what = _clip(record["what"]) if ours and record.get("what") else _command_of(pid)
        who = "this process" if pid == os.getpid() else f"process {pid}"
        return pid, who + (f" ({what})" if what else "")
    if record.get("pid") is not None:
        key = (_clip(record.get("host")), _clip(record.get("pid"), 12))
        what = f" ({_clip(record['what'])})" if record.get("what") else ""
        return key, f"process {key[1]} on {key[0]}{what}"
    return None, "another process"


@contextlib.contextmanager
def project_write_lock(folder: str | os.PathLike, timeout_s: float = 120.0, what: str = "a command adding a take",
                       stuck_s: float = STUCK_HOLDER_S, record: bool = True) -> Iterator[None]:
    """Hold the project's write lock for the `with` block.

    Each call opens its own descriptor, so threads of one process exclude each other too. While other
    processes take their turns the wait goes on (up to `timeout_s`); one holder keeping it `stuck_s`
    ends the wait with ProjectLocked (a busy project, exit 3) naming the holder. A lock file that is a
    link or not a plain file, or a folder that cannot hold one, is a ProjectError. `record` False
    leaves the lock file's content as it is (a check before any work changes nothing on disk).
    """
    path = lock_path(folder)
    fd = _open_lock_file(path)
    try:
        started = time.monotonic()
        holder: object = None
        since: float | None = None
        while not _try_lock(fd):
            now = time.monotonic()
            current, described = lock_holder(fd)
            if since is None or current != holder:
                holder, since = current, now
            if now - since >= stuck_s or now - started >= timeout_s:
                raise ProjectLocked(f"{Path(folder)} is busy: its write lock {path} is held by {described} "
                                    f"(waited {now - started:.0f} s); try again when it has finished.")
            time.sleep(POLL_S)
        if record:
            _write_record(fd, what)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
