"""A frame cache with a byte budget, and thumbnails made on demand (optionally kept on disk).

The GUI reads frames from a background thread while the timeline paints, so both caches are
thread-safe. A loader runs outside the lock: two threads asking for the same missing frame may
both decode it, which is cheaper than making every reader wait on one slow decode.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import StudioError
from ..core.fsio import atomic_write_bytes
from ..core.paths import user_cache_dir
from .imageio import encode_png, png_bytes_to_array, to_bit_depth

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB: ~130 frames of 1920x1080 RGBA


class FrameCache:
    """Least-recently-used cache of numpy frames, bounded by their total size in bytes."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = int(budget_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            array = self._items.get(key)
            if array is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return array

    def put(self, key: Hashable, array: np.ndarray) -> None:
        """Store a frame (read-only from now on). A frame larger than the whole budget is not kept."""
        array.setflags(write=False)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if array.nbytes > self.budget_bytes:
                return
            self._items[key] = array
            self._bytes += array.nbytes
            self._evict()

    def get_or_load(self, key: Hashable, loader: Callable[[], np.ndarray]) -> np.ndarray:
        array = self.get(key)
        if array is None:
            array = loader()
            self.put(key, array)
        return array

    def invalidate(self, key: Hashable) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def set_budget(self, budget_bytes: int) -> None:
        with self._lock:
            self.budget_bytes = int(budget_bytes)
            self._evict()

    def _evict(self) -> None:
        while self._bytes > self.budget_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes


def thumbnail(array: np.ndarray, max_side: int) -> np.ndarray:
    """A uint8 copy whose longer side is at most `max_side` (area filtering; never enlarged)."""
    array = to_bit_depth(array, 8)
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(array).copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(np.ascontiguousarray(array), size, interpolation=cv2.INTER_AREA)


class ThumbnailCache:
    """Thumbnails in memory, backed by PNGs in the user cache folder keyed by file, mtime and size.

    Images without a file (video frames, generated previews) are kept in memory only.
    """

    def __init__(self, folder: str | os.PathLike | None = None, budget_bytes: int = 64 << 20,
                 use_disk: bool = True) -> None:
        self.folder = Path(folder) if folder is not None else user_cache_dir() / "thumbnails"
        self.use_disk = use_disk
        self.memory = FrameCache(budget_bytes)

    def _disk_key(self, path: Path, max_side: int) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        text = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{max_side}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def get(self, path: str | os.PathLike, max_side: int, loader: Callable[[], np.ndarray]) -> np.ndarray:
        """The thumbnail of the image at `path`; `loader` decodes the full frame when needed."""
        path = Path(path)
        memory_key = (str(path), max_side)
        cached = self.memory.get(memory_key)
        if cached is not None:
            return cached
        disk_key = self._disk_key(path, max_side) if self.use_disk else None
        disk_file = self.folder / disk_key[:2] / f"{disk_key}.png" if disk_key else None
        if disk_file is not None and disk_file.is_file():
            try:
                small = png_bytes_to_array(disk_file.read_bytes())
                self.memory.put(memory_key, small)
                return small
            except Exception:  # a damaged cache entry is rebuilt, never an error
                log.debug("thumbnail cache entry %s unreadable; rebuilding", disk_file)
        small = thumbnail(loader(), max_side)
        if disk_file is not None:
            try:
                atomic_write_bytes(disk_file, encode_png(small, 3))
            except StudioError as exc:  # a full or read-only cache folder only costs speed
                log.debug("thumbnail not cached on disk: %s", exc)
        self.memory.put(memory_key, small)
        return small
