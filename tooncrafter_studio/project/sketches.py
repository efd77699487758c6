"""Sketches on in-between cells: undoable placement, moving, removal and strength, and the copy of
a sketch file into the project folder (`sketches/`, named by content, so re-importing the same
drawing costs nothing and a take's provenance hash always finds its file).

A sketch belongs to a segment and sits at an in-between offset (timeline frames after the start
key); generation gives it the time of the in-between at that offset.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from ..core.errors import InputError, ProjectError
from ..core.fsio import atomic_write_bytes, read_regular_file
from .commands import Command, SegmentKey, SegmentSettingsEdit
from .document import SegmentSettings, SketchRef

SKETCHES_DIR = "sketches"
MAX_SKETCH_BYTES = 256 << 20


def read_sketch_bytes(path: str | Path) -> bytes:
    """The bytes of a sketch file the user chose: a regular file (never a FIFO or a device), not
    empty, at most MAX_SKETCH_BYTES. Whether they are an image is media's question."""
    source = Path(path)
    data = read_regular_file(source, MAX_SKETCH_BYTES, ProjectError, "sketch image")
    if not data:
        raise ProjectError(f"Sketch {source} is empty (zero bytes).")
    return data


def store_sketch_bytes(folder: Path, data: bytes, name: str) -> SketchRef:
    """Copy checked image bytes into the project's sketches/ folder (atomically) and return their
    reference. Callers check the bytes are an image first (media.sketch_files.import_sketch_image)."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{SKETCHES_DIR}/{digest[:16]}{Path(name).suffix.lower() or '.png'}"
    target = Path(folder) / relative
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data, error=ProjectError)
    return SketchRef(relative, digest, Path(name).name)


class _SketchEdit(SegmentSettingsEdit):
    """Replace a segment's sketches (and strength); undo restores the previous settings."""

    def __init__(self, key: SegmentKey) -> None:
        self.key: SegmentKey = (key[0], key[1])
        self._before: SegmentSettings | None = None
        self._created = False

    def _edit(self, settings: SegmentSettings, gap: int | None) -> None:
        raise NotImplementedError

    def edited(self, current: SegmentSettings) -> SegmentSettings:
        new = copy.deepcopy(current)
        self._edit(new, None)
        return new


class PlaceSketch(_SketchEdit):
    """Put a sketch on the in-between cell at `offset` (replacing one already there)."""

    label = "Place sketch"

    def __init__(self, key: SegmentKey, offset: int, sketch: SketchRef) -> None:
        super().__init__(key)
        if int(offset) < 1:
            raise InputError("A sketch goes on an in-between frame after the start key.")
        self.offset, self.sketch = int(offset), sketch

    def _edit(self, settings: SegmentSettings, gap: int | None) -> None:
        settings.sketches[self.offset] = copy.deepcopy(self.sketch)


class RemoveSketch(_SketchEdit):
    label = "Remove sketch"

    def __init__(self, key: SegmentKey, offset: int) -> None:
        super().__init__(key)
        self.offset = int(offset)

    def _edit(self, settings: SegmentSettings, gap: int | None) -> None:
        if self.offset not in settings.sketches:
            raise InputError(f"There is no sketch {self.offset} frames after the key.")
        del settings.sketches[self.offset]


class MoveSketch(_SketchEdit):
    label = "Move sketch"

    def __init__(self, key: SegmentKey, offset: int, to: int) -> None:
        super().__init__(key)
        if int(to) < 1:
            raise InputError("A sketch goes on an in-between frame after the start key.")
        self.offset, self.to = int(offset), int(to)

    def _edit(self, settings: SegmentSettings, gap: int | None) -> None:
        if self.offset not in settings.sketches:
            raise InputError(f"There is no sketch {self.offset} frames after the key.")
        if self.to != self.offset and self.to in settings.sketches:
            raise InputError(f"The cell {self.to} frames after the key already has a sketch; remove it first.")
        settings.sketches[self.to] = settings.sketches.pop(self.offset)


class SetSketchScale(_SketchEdit):
    label = "Sketch strength"

    def __init__(self, key: SegmentKey, scale: float, merge_id: str | None = None) -> None:
        super().__init__(key)
        self.scale = float(scale)
        self.merge_id = merge_id

    def _edit(self, settings: SegmentSettings, gap: int | None) -> None:
        settings.sketch_scale = self.scale

    def merge_with(self, later: Command) -> bool:
        if not isinstance(later, SetSketchScale) or later.key != self.key:
            return False
        self.scale = later.scale
        return True
