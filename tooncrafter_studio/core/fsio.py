"""Atomic file writes: write a temporary file beside the target, fsync, rename over it.

A crash or a full disk at any moment leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import StudioError


def _describe_os_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"The disk is full: could not write {path}."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"No permission to write {path}."
    return f"Could not write {path}: {exc.strerror or exc}."


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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise error(_describe_os_error(path, exc)) from exc
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


def file_identity(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
