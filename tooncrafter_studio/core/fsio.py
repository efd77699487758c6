"""Atomic file writes and bounded reads.

Writes: a temporary file beside the target, fsync, rename over it. A crash or a full disk at any
moment leaves either the old file or the new one, never a mix. Files get the permissions any
program's new files get (0666 less the umask), so a colleague or a render node can read them.

Reads of documents (`read_regular_file`): only regular files, at most a given size, so that a
project.json that is a FIFO or a link to /dev/zero is refused instead of hanging or filling memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import StudioError

# errno values that mean "this machine cannot do it here" (retrying elsewhere may work)
RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOMEM,
                             errno.EIO, errno.EMFILE, errno.ENFILE})

_umask: int | None = None
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc)."""
    global _umask
    with _umask_lock:
        try:
            text = Path("/proc/self/status").read_text()
            match = re.search(r"^Umask:\s*([0-7]+)", text, re.MULTILINE)
            if match:
                return int(match.group(1), 8)
        except OSError:
            pass
        if _umask is None:  # elsewhere: set and restore once (new files are rare at start-up)
            _umask = os.umask(0o022)
            os.umask(_umask)
        return _umask


def new_file_mode() -> int:
    return 0o666 & ~current_umask()


def describe_os_error(path: Path | str, exc: OSError, action: str = "write") -> str:
    """One sentence naming the file and what went wrong, for an OSError while reading or writing it."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk is full: could not {action} {path}."
    if exc.errno == errno.EROFS:
        return f"The disk is read-only: could not {action} {path}."
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"No permission to {action} {path}."
    if exc.errno == errno.ENAMETOOLONG:
        return f"The file name is too long for this file system: {str(path)[:120]}…"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # a file where a folder of the path should be
        blocker = next((p for p in Path(path).parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            return f"{blocker} is a file, not a folder: could not {action} {path}."
    return f"Could not {action} {path}: {exc.strerror or exc}."


def os_error(error: type[StudioError], path: Path | str, exc: OSError, action: str = "write") -> StudioError:
    """`error` with a clear message; flagged as a resource problem (full disk...) where it is one."""
    result = error(describe_os_error(path, exc, action))
    if exc.errno in RESOURCE_ERRNOS and not (action == "read" and exc.errno in (errno.EACCES, errno.EPERM)):
        result.resource = True
    return result


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", error: type[StudioError] = StudioError,
                encoding: str | None = None) -> Iterator[IO]:
    """Yield a file object; on clean exit it replaces `path` atomically, on error nothing changes.

    OS errors (full disk, no permission) are re-raised as `error` with a clear message.
    """
    path = Path(path)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        with contextlib.suppress(OSError, AttributeError):  # mkstemp makes 0600; give the usual mode
            os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise os_error(error, path, exc) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, error: type[StudioError] = StudioError) -> None:
    with atomic_open(path, "wb", error=error) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, error: type[StudioError] = StudioError) -> None:
    with atomic_open(path, "w", error=error) as handle:
        handle.write(text)


def open_regular_file(path: str | os.PathLike, max_bytes: int, error: type[StudioError] = StudioError,
                      what: str = "file") -> tuple[int, int]:
    """Open `path` for reading if it is a regular file of at most `max_bytes`; returns (fd, size).

    Opened non-blocking, so a FIFO never hangs the open; devices, folders and sockets are refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise error(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a {what}.") from None
    except OSError as exc:
        raise os_error(error, path, exc, "read") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a pipe (FIFO)" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
            raise error(f"{path} is {kind}, not a regular {what}; it was not read.")
        if info.st_size > max_bytes:
            raise error(f"{path} is too large for a {what} ({info.st_size / 2**20:.0f} MiB; the limit is "
                        f"{max_bytes / 2**20:.0f} MiB).")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_regular_file(path: str | os.PathLike, max_bytes: int, error: type[StudioError] = StudioError,
                      what: str = "file") -> bytes:
    """The bytes of a regular file of at most `max_bytes` (see `open_regular_file`)."""
    fd, size = open_regular_file(path, max_bytes, error, what)
    chunks: list[bytes] = []
    total = 0
    try:
        with os.fdopen(fd, "rb") as handle:
            # Read what the file holds, not max_bytes at once: read(n) allocates n bytes up front.
            while total <= max_bytes:
                block = handle.read(min(max(size + 1, 1 << 16), max_bytes + 1 - total))
                if not block:
                    break
                chunks.append(block)
                total += len(block)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise os_error(error, path, exc, "read") from None
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"{path} is too large for a {what} (over {max_bytes / 2**20:.0f} MiB).")
    return data


def check_regular_file(path: str | os.PathLike, error: type[StudioError] = StudioError, what: str = "file") -> int:
    """The size of `path` if it is a regular file (following links); a clear `error` otherwise."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path} does not exist.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path} is a link that leads to itself (a symlink loop).") from None
        raise os_error(error, path, exc, "read") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path} is a folder, not a {what}.")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path} is not a regular {what} (a pipe, a device or a socket); it was not read.")
    return info.st_size


def file_identity(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
