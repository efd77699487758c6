"""Background image loading for the timeline (thumbnails) and the viewer (full frames).

Painting never decodes: it asks `ImageLoader.get(ref)`, which returns the cached image or None
and queues a QRunnable on the loader's own QThreadPool. When the image is ready the loader emits
`ready(ref)` on the UI thread and the widget repaints. Requests that are no longer wanted (the
user scrolled on) are dropped from the pool's queue with `drop_pending()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from ...media import FrameCache, thumbnail
from ...project.resolve import ImageRef
from ..worker import lower_thread_priority, track_pool
from .frames import FrameProvider, display_array

log = logging.getLogger(__name__)


class _QImagePixels(np.ndarray):
    """A numpy view of a QImage's pixels that keeps the QImage alive (views of it do too)."""

    owner: QImage | None = None


@dataclass(frozen=True)
class DisplayImage:
    """A QImage that owns its pixels, and a numpy view of them (for tinting and tests).

    The QImage is allocated by Qt and the pixels copied in: wrapping a Python buffer instead
    would tie a Python refcount to a C++ object that pool threads create and destroy.
    """

    array: np.ndarray
    image: QImage

    @classmethod
    def from_array(cls, array: np.ndarray) -> DisplayImage:
        """RGB becomes Format_RGB32 (Qt's native raster format: scaled draws are ~5x faster than
        from RGB888); RGBA stays straight RGBA8888. `array` is an RGB(A) view of the pixels."""
        array = display_array(array)
        height, width, channels = array.shape
        if channels == 3:
            image = QImage(width, height, QImage.Format.Format_RGB32)
            stride = image.bytesPerLine()  # always width * 4 for 32-bit formats
            buffer = np.frombuffer(image.bits(), np.uint8, count=stride * height).reshape(height, stride // 4, 4)
            bgrx = buffer[:, :width].view(_QImagePixels)
            bgrx.owner = image
            bgrx[..., 3] = 255
            view = bgrx[..., 2::-1]  # B, G, R in memory (little-endian 0xffRRGGBB): R, G, B here
        else:
            image = QImage(width, height, QImage.Format.Format_RGBA8888)
            stride = image.bytesPerLine()
            buffer = np.frombuffer(image.bits(), np.uint8, count=stride * height).reshape(height, stride)
            view = buffer[:, :width * channels].reshape(height, width, channels).view(_QImagePixels)
            view.owner = image
        view[...] = array
        return cls(view, image)

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])


class _Signals(QObject):
    loaded = Signal(object, object, int)  # key, DisplayImage or None, generation
    failed = Signal(object, str, int)


class _LoadJob(QRunnable):
    def __init__(self, loader: ImageLoader, key: Hashable, generation: int) -> None:
        super().__init__()
        self.loader = loader
        self.key = key
        self.generation = generation
        self.setAutoDelete(True)

    def run(self) -> None:  # pool thread
        lower_thread_priority()
        loader = self.loader
        try:
            image = loader.make(self.key)
        except Exception as exc:  # a missing file shows as a marked cell, never a crash
            loader._signals.failed.emit(self.key, str(exc), self.generation)
            return
        loader._store(self.key, image)
        loader._signals.loaded.emit(self.key, image, self.generation)


class ImageLoader(QObject):
    """Loads images of ImageRefs off the UI thread; `max_side` > 0 makes thumbnails."""

    ready = Signal(object)  # ImageRef
    failed = Signal(object, str)

    def __init__(self, provider: FrameProvider, max_side: int = 0, threads: int = 1,
                 budget_bytes: int = 256 << 20, parent: QObject | None = None,
                 transform: Callable[[DisplayImage, Any], DisplayImage] | None = None) -> None:
        super().__init__(parent)
        self.provider = provider
        self.transform = transform
        self.max_side = max_side
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, threads))
        self.pool.setExpiryTimeout(2000)
        track_pool(self.pool)
        self.cache = FrameCache(budget_bytes)  # numpy arrays (bounded by bytes)
        self._images: dict[Hashable, DisplayImage] = {}  # QImage wrappers of cached arrays
        self._lock = threading.Lock()
        self._pending: set[Hashable] = set()
        self._errors: dict[Hashable, str] = {}
        self._generation = 0
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)

    def _store(self, key: Hashable, image: DisplayImage) -> None:  # any thread
        self.cache.put(key, image.array)
        with self._lock:
            self._images[key] = image
            if len(self._images) > len(self.cache) + 64:  # forget wrappers of evicted arrays
                for stale in [k for k in self._images if k not in self.cache]:
                    del self._images[stale]

    def peek(self, ref: Hashable) -> DisplayImage | None:
        """The cached image, without queueing a load."""
        with self._lock:
            image = self._images.get(ref)
        if image is not None and self.cache.get(ref) is None:  # evicted meanwhile
            with self._lock:
                self._images.pop(ref, None)
            return None
        return image

    def get(self, ref: Hashable, priority: int = 0) -> DisplayImage | None:
        """The image if cached; otherwise None and a background load is queued."""
        image = self.peek(ref)
        if image is None:
            self.request(ref, priority)
        return image

    def error(self, ref: Hashable) -> str | None:
        return self._errors.get(ref)

    def request(self, ref: Hashable, priority: int = 0) -> None:
        if ref in self._pending or ref in self._errors:
            return
        self._pending.add(ref)
        self.pool.start(_LoadJob(self, ref, self._generation), priority)

    def make(self, key: Hashable) -> DisplayImage:  # any thread
        """Decode (and shrink, and transform) the picture of a key: an ImageRef or (ImageRef, variant)."""
        ref, variant = (key, None) if isinstance(key, ImageRef) else key
        array = self.provider.load(ref)
        if self.max_side:
            array = thumbnail(array, self.max_side)
        image = DisplayImage.from_array(array)
        if variant is not None and self.transform is not None:
            image = self.transform(image, variant)
        return image

    def load_now(self, key: Hashable) -> DisplayImage:
        """Decode on the calling thread (tools and tests; never from paint code)."""
        image = self.peek(key)
        if image is None:
            image = self.make(key)
            self._store(key, image)
        return image

    def drop_pending(self) -> None:
        """Forget queued loads that have not started (the view moved on)."""
        self.pool.clear()
        self._generation += 1
        self._pending.clear()

    def invalidate(self, ref: Hashable | None = None) -> None:
        """Forget one image (or all, e.g. after opening another project)."""
        if ref is None:
            self.drop_pending()
            self.cache.clear()
            with self._lock:
                self._images.clear()
            self._errors.clear()
            return
        self.cache.invalidate(ref)
        with self._lock:
            self._images.pop(ref, None)
        self._errors.pop(ref, None)

    def pending_count(self) -> int:
        return len(self._pending)

    def wait(self, timeout_ms: int = 10_000) -> bool:
        return self.pool.waitForDone(timeout_ms)

    def shutdown(self) -> None:
        self.pool.clear()
        self.pool.waitForDone(30_000)

    def _on_loaded(self, key: Hashable, _image: DisplayImage, _generation: int) -> None:
        self._pending.discard(key)
        self.ready.emit(key)

    def _on_failed(self, key: Hashable, message: str, _generation: int) -> None:
        self._pending.discard(key)
        self._errors[key] = message
        log.debug("could not load %s: %s", key, message)
        self.failed.emit(key, message)
