"""Pixels behind the timeline: which file (or video frame) an ImageRef is, decoded for display.

Qt-free on purpose: the loaders in thumbnails.py call this from pool threads, and the benchmark
swaps in a provider that synthesises frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...core.errors import MediaError
from ...media import read_frame, read_image
from ...media.imageio import to_bit_depth
from ...project.document import Shot, SourceKind
from ...project.resolve import ImageRef


class FrameProvider:
    """Decodes the picture of an ImageRef of the current shot (8-bit, RGB or RGBA)."""

    def __init__(self, shot_getter: Callable[[], Shot | None],
                 folder_getter: Callable[[], str | os.PathLike | None]) -> None:
        self._shot = shot_getter
        self._folder = folder_getter

    def path(self, ref: ImageRef) -> Path | None:
        """The file behind a ref (None for video frames or unknown refs)."""
        shot, folder = self._shot(), self._folder()
        if shot is None:
            return None
        if ref.kind == "take":
            take = shot.takes.get(ref.id)
            if take is None or not 0 <= ref.index < len(take.frames):
                return None
            path = Path(take.frames[ref.index].file)
            return path if path.is_absolute() or folder is None else Path(folder) / path
        source = shot.sources.get(ref.id)
        if source is None or source.kind == SourceKind.VIDEO or not 0 <= ref.index < len(source.files):
            return None
        base = Path(source.path)
        if not base.is_absolute() and folder is not None:
            base = Path(folder) / base
        return base / source.files[ref.index]

    def missing(self, ref: ImageRef) -> str | None:
        """The name of the file behind `ref` when it is not on disk (a missing drawing), else None."""
        shot, folder = self._shot(), self._folder()
        if shot is None:
            return None
        if ref.kind != "take":
            source = shot.sources.get(ref.id)
            if source is not None and source.kind == SourceKind.VIDEO:
                video = Path(source.path)
                video = video if video.is_absolute() or folder is None else Path(folder) / video
                return None if video.is_file() else video.name
        path = self.path(ref)
        return None if path is None or path.is_file() else path.name

    def unavailable(self, ref: ImageRef, error: str | None = None) -> str | None:
        """What the viewer says instead of a picture it cannot show (None: it can, or may yet)."""
        name = self.missing(ref)
        if name is not None:
            return f"missing drawing: {name} is not where the project says"
        if error:
            return f"cannot show this drawing: {error}"
        return None

    def load(self, ref: ImageRef) -> np.ndarray:
        shot, folder = self._shot(), self._folder()
        if shot is None:
            raise MediaError("No shot is open.")
        if ref.kind == "take":
            path = self.path(ref)
            if path is None:
                raise MediaError(f"Take frame {ref.index + 1} of take {ref.id} is not in the shot.")
            array = read_image(path)
        else:
            source = shot.sources.get(ref.id)
            if source is None:
                raise MediaError(f"Source {ref.id} is not in the shot.")
            array = read_frame(source, ref.index, folder)
        return display_array(array)


def display_array(array: np.ndarray) -> np.ndarray:
    """8-bit, contiguous, 3 or 4 channels: what QImage can wrap without conversion."""
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.dtype != np.uint8:
        array = to_bit_depth(array, 8)
    if array.shape[2] not in (3, 4):
        array = array[:, :, :3]
    return np.ascontiguousarray(array)
