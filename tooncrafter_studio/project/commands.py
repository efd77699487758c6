"""Undoable edits of the shot, and the stack that runs them. No Qt: the GUI wraps this.

Every change to a `Shot` is a `Command` with `do(shot)` and `undo(shot)`, each returning a
`Change` that says what was touched so that a view repaints just that. Commands check their
input before they mutate anything, so a command that raises leaves the shot as it was.

The `CommandStack` keeps the history: push (runs the command), undo, redo, merging of repeated
commands with the same `merge_id` (a drag of an exposure or a spin box makes one undo step),
macros (several commands undone as one), and a clean index (the state last saved) so that the
window title can show unsaved changes.

Pixel files of takes are never deleted by a command: removing or un-adding a take only drops it
from the document; `CommandStack.referenced_take_ids()` lists every take a redo or undo could
bring back, so that a garbage collection of take folders can leave those alone.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InputError
from ..core.limits import MAX_EXPOSURE, MAX_SHOT_FRAMES
from .document import (  # noqa: F401  (settings helpers re-exported for callers of commands)
    SETTINGS_FIELDS,
    Cell,
    Drawing,
    ReviewStatus,
    Segment,
    SegmentSettings,
    Shot,
    Source,
    Spacing,
    Take,
    check_seed,
    segment_settings,
    validate_settings,
)
from .resolve import cell_at
from .timing_sheet import Sheet

log = logging.getLogger(__name__)

SegmentKey = tuple[str, str]


# --------------------------------------------------------------------------- change notices


@dataclass(frozen=True)
class Change:
    """What an edit touched. Combine with `|`.

    timeline: cells or exposures changed, so frame numbers after the edit may have moved.
    keys: key marks changed, so the segments (key pairs) may be different.
    shot: name, fps or size.
    segments: segments whose settings, take list or active take changed.
    takes: takes whose frames' review status or label changed.
    drawings: drawings whose own fields (key mark, label) changed.
    sources: where footage files are looked for changed (relinking), so every picture may differ.
    """

    timeline: bool = False
    keys: bool = False
    shot: bool = False
    segments: frozenset[SegmentKey] = frozenset()
    takes: frozenset[str] = frozenset()
    drawings: frozenset[str] = frozenset()
    sources: bool = False

    def __or__(self, other: Change) -> Change:
        return Change(self.timeline or other.timeline, self.keys or other.keys, self.shot or other.shot,
                      self.segments | other.segments, self.takes | other.takes, self.drawings | other.drawings,
                      self.sources or other.sources)

    @property
    def empty(self) -> bool:
        return not (self.timeline or self.keys or self.shot or self.segments or self.takes or self.drawings
                    or self.sources)


NO_CHANGE = Change()


# --------------------------------------------------------------------------- commands


class Command:
    """One undoable edit. Subclasses implement `do` and `undo`; redo is `do` again."""

    label: str = "Edit"
    # Commands with the same merge_id pushed one after another (while the stack's merge window is
    # open) become one undo step, e.g. the steps of a drag.
    merge_id: str | None = None

    def do(self, shot: Shot) -> Change:
        raise NotImplementedError

    def undo(self, shot: Shot) -> Change:
        raise NotImplementedError

    def merge_with(self, later: Command) -> bool:
        """Absorb `later` (already done) into this command; True when merged."""
        return False

    def referenced_takes(self) -> list[Take]:
        """The takes this command adds or removes: undo or redo can put them back, so their files
        must outlive the history."""
        return []


class Compound(Command):
    """Several commands done in order and undone in reverse, as one step."""

    def __init__(self, label: str, commands: Iterable[Command] = ()) -> None:
        self.label = label
        self.commands: list[Command] = list(commands)

    def do(self, shot: Shot) -> Change:
        change = NO_CHANGE
        done: list[Command] = []
        try:
            for command in self.commands:
                change |= command.do(shot)
                done.append(command)
        except BaseException:
            for command in reversed(done):  # leave the shot as it was
                command.undo(shot)
            raise
        return change

    def undo(self, shot: Shot) -> Change:
        change = NO_CHANGE
        for command in reversed(self.commands):
            change |= command.undo(shot)
        return change

    def referenced_takes(self) -> list[Take]:
        return [take for command in self.commands for take in command.referenced_takes()]


def _frame_error(shot: Shot, frame: int) -> InputError:
    return InputError(f"Frame {frame} is outside the shot (frames 1 to {shot.frame_count}).")


def _cell_index(shot: Shot, frame: int) -> int:
    try:
        return cell_at(shot, int(frame))[0]
    except IndexError:
        raise _frame_error(shot, frame) from None


class SetKeys(Command):
    """Mark drawings as keys, or unmark them."""

    def __init__(self, drawing_ids: Iterable[str], is_key: bool) -> None:
        self.drawing_ids = list(dict.fromkeys(drawing_ids))
        self.is_key = bool(is_key)
        self.label = "Set key" if is_key else "Remove key"
        if len(self.drawing_ids) > 1:
            self.label += "s"
        self._before: dict[str, bool] = {}

    @classmethod
    def at_frames(cls, shot: Shot, frames: Iterable[int], is_key: bool) -> SetKeys:
        """Keys by timeline frame: the drawing shown by each frame's cell."""
        return cls([shot.cells[_cell_index(shot, f)].drawing_id for f in frames], is_key)

    def do(self, shot: Shot) -> Change:
        missing = [d for d in self.drawing_ids if d not in shot.drawings]
        if missing:
            raise InputError(f"No drawing '{missing[0]}' in the shot.")
        self._before = {d: shot.drawings[d].is_key for d in self.drawing_ids}
        for drawing_id in self.drawing_ids:
            shot.drawings[drawing_id].is_key = self.is_key
        return Change(keys=True, drawings=frozenset(self.drawing_ids))

    def undo(self, shot: Shot) -> Change:
        for drawing_id, was_key in self._before.items():
            shot.drawings[drawing_id].is_key = was_key
        return Change(keys=True, drawings=frozenset(self._before))


def _check_shot_length(frames: int) -> None:
    if frames > MAX_SHOT_FRAMES:
        raise InputError(f"The shot would be {frames:,} frames long, more than the limit of {MAX_SHOT_FRAMES:,}.")


class SetExposure(Command):
    """Set the exposure (length in frames) of cells: 1s, 2s, 3s or any n >= 1."""

    def __init__(self, cell_indices: Iterable[int], length: int, merge_id: str | None = None) -> None:
        self.cell_indices = sorted(set(int(i) for i in cell_indices))
        self.length = int(length)
        self.merge_id = merge_id
        self.label = f"Exposure on {self.length}s"
        self._before: dict[int, int] = {}

    @classmethod
    def at_frames(cls, shot: Shot, frames: Iterable[int], length: int, merge_id: str | None = None) -> SetExposure:
        return cls([_cell_index(shot, f) for f in frames], length, merge_id)

    def do(self, shot: Shot) -> Change:
        if self.length < 1:
            raise InputError(f"An exposure must be at least 1 frame, not {self.length}.")
        if self.length > MAX_EXPOSURE:
            raise InputError(f"An exposure of {self.length} frames is too long (at most {MAX_EXPOSURE}).")
        if not self.cell_indices:
            raise InputError("No cells were selected.")
        bad = [i for i in self.cell_indices if not 0 <= i < len(shot.cells)]
        if not bad:
            grown = sum(self.length - shot.cells[i].length for i in set(self.cell_indices))
            _check_shot_length(shot.frame_count + grown)
        if bad:
            raise InputError(f"Cell {bad[0] + 1} does not exist (the shot has {len(shot.cells)} cells).")
        self._before = {i: shot.cells[i].length for i in self.cell_indices}
        for i in self.cell_indices:
            shot.cells[i].length = self.length
        return Change(timeline=True)

    def undo(self, shot: Shot) -> Change:
        for i, length in self._before.items():
            shot.cells[i].length = length
        return Change(timeline=True)

    def merge_with(self, later: Command) -> bool:
        if not isinstance(later, SetExposure) or later.cell_indices != self.cell_indices:
            return False
        self.length = later.length  # keep our `_before`: undo goes back to before the drag
        self.label = later.label
        return True


class _CellsSnapshot(Command):
    """Base for edits that reshape the cell list: undo restores the list exactly."""

    def __init__(self) -> None:
        self._before: list[Cell] | None = None

    def _reshape(self, shot: Shot) -> list[Cell]:
        raise NotImplementedError

    def do(self, shot: Shot) -> Change:
        after = self._reshape(shot)  # validates; does not touch shot.cells
        self._before = copy.deepcopy(shot.cells)
        shot.cells[:] = after
        return Change(timeline=True, keys=True)

    def undo(self, shot: Shot) -> Change:
        assert self._before is not None
        shot.cells[:] = copy.deepcopy(self._before)
        return Change(timeline=True, keys=True)


class InsertFrames(_CellsSnapshot):
    """Insert `count` frames at timeline `frame` by holding the drawing shown there longer.

    `frame` may be one past the last frame: the last drawing is held longer.
    """

    def __init__(self, frame: int, count: int = 1) -> None:
        super().__init__()
        self.frame = int(frame)
        self.count = int(count)
        self.label = f"Insert {self.count} frame{'s' if self.count != 1 else ''}"

    def _reshape(self, shot: Shot) -> list[Cell]:
        if self.count < 1:
            raise InputError(f"Cannot insert {self.count} frames.")
        if not shot.cells:
            raise InputError("The shot has no drawings to hold.")
        frame = self.frame
        if frame == shot.frame_count + 1:
            frame -= 1
        index = _cell_index(shot, frame)
        if shot.cells[index].length + self.count > MAX_EXPOSURE:
            raise InputError(f"A drawing held for {shot.cells[index].length + self.count} frames is too long "
                             f"(at most {MAX_EXPOSURE}).")
        _check_shot_length(shot.frame_count + self.count)
        cells = copy.deepcopy(shot.cells)
        cells[index].length += self.count
        return cells


class DeleteFrames(_CellsSnapshot):
    """Delete `count` timeline frames from `frame` on: holds get shorter, cells left with none go."""

    def __init__(self, frame: int, count: int = 1) -> None:
        super().__init__()
        self.frame = int(frame)
        self.count = int(count)
        self.label = f"Delete {self.count} frame{'s' if self.count != 1 else ''}"

    def _reshape(self, shot: Shot) -> list[Cell]:
        if self.count < 1:
            raise InputError(f"Cannot delete {self.count} frames.")
        last = self.frame + self.count - 1
        if self.frame < 1 or last > shot.frame_count:
            raise InputError(f"Frames {self.frame} to {last} are outside the shot "
                             f"(frames 1 to {shot.frame_count}).")
        if self.count >= shot.frame_count:
            raise InputError("A shot needs at least one frame; not every frame can be deleted.")
        cells: list[Cell] = []
        start = 1
        for cell in shot.cells:
            end = start + cell.length - 1
            overlap = max(0, min(end, last) - max(start, self.frame) + 1)
            if cell.length - overlap > 0:
                cells.append(Cell(cell.drawing_id, cell.length - overlap))
            start = end + 1
        return cells


class SegmentSettingsEdit(Command):
    """A change of one segment's settings: `edited(current)` says what they become (validated before
    anything changes); undo restores the previous settings, or removes a segment it created."""

    key: SegmentKey
    _before: SegmentSettings | None = None
    _created: bool = False

    def edited(self, current: SegmentSettings) -> SegmentSettings:
        raise NotImplementedError

    def do(self, shot: Shot) -> Change:
        for drawing_id in self.key:
            if drawing_id not in shot.drawings:
                raise InputError(f"No drawing '{drawing_id}' in the shot.")
        segment = shot.segments.get(self.key)
        current = segment.settings if segment is not None else SegmentSettings()
        new = self.edited(current)
        validate_settings(new)
        self._created = segment is None
        if segment is None:
            segment = shot.segments[self.key] = Segment(*self.key)
        self._before = copy.deepcopy(current)
        segment.settings = new
        return Change(segments=frozenset([self.key]))

    def undo(self, shot: Shot) -> Change:
        if self._created:
            del shot.segments[self.key]
        else:
            assert self._before is not None
            shot.segments[self.key].settings = copy.deepcopy(self._before)
        return Change(segments=frozenset([self.key]))


class SetSegmentSettings(SegmentSettingsEdit):
    """Change some of a segment's in-between settings (count, exposure, spacing, engine, seed, ...)."""

    def __init__(self, key: SegmentKey, merge_id: str | None = None, **changes: Any) -> None:
        unknown = sorted(set(changes) - SETTINGS_FIELDS)
        if unknown:
            raise InputError(f"Unknown segment setting '{unknown[0]}'.")
        self.key: SegmentKey = (key[0], key[1])
        self.changes = changes
        self.merge_id = merge_id
        self.label = "Segment " + ", ".join(sorted(changes)) if changes else "Segment settings"
        self._before: SegmentSettings | None = None
        self._created = False

    def edited(self, current: SegmentSettings) -> SegmentSettings:
        return dataclasses.replace(copy.deepcopy(current), **copy.deepcopy(self.changes))

    def merge_with(self, later: Command) -> bool:
        if not isinstance(later, SetSegmentSettings) or later.key != self.key:
            return False
        self.changes = {**self.changes, **later.changes}
        return True


class SetSegmentArc(SetSegmentSettings):
    """Bend (or straighten, with None) the path of a segment's motion: `arc` is where the motion
    passes at mid-segment, offset from the straight line in fractions of the frame. Dragging the
    arc handle pushes one of these per move with the same merge_id: one undo step per drag."""

    def __init__(self, key: SegmentKey, arc: tuple[float, float] | None, merge_id: str | None = None) -> None:
        super().__init__(key, merge_id, arc=None if arc is None else (float(arc[0]), float(arc[1])))
        self.label = "Path arc" if arc is not None else "Straight path"


class AddTake(Command):
    """Add a generated take to its segment and (by default) make it the active one."""

    def __init__(self, take: Take, activate: bool = True) -> None:
        self.take = take
        self.activate = activate
        self.label = "Add take"
        self._created_segment = False
        self._previous_active: str | None = None
        self._previous_made = 0

    def do(self, shot: Shot) -> Change:
        take = self.take
        if take.id in shot.takes:
            raise InputError(f"The shot already has a take '{take.id}'.")
        for drawing_id in (take.start_key, take.end_key):
            if drawing_id not in shot.drawings:
                raise InputError(f"The take's key '{drawing_id}' is not a drawing of the shot.")
        key = (take.start_key, take.end_key)
        segment = shot.segments.get(key)
        self._created_segment = segment is None
        if segment is None:
            segment = shot.segments[key] = Segment(*key)
        self._previous_active = segment.active_take
        self._previous_made = segment.takes_made
        label = take.label
        if label[:1] == "T" and label[1:].isdigit():
            segment.takes_made = max(segment.takes_made, int(label[1:]))
        shot.takes[take.id] = take
        segment.take_ids.append(take.id)
        if self.activate or segment.active_take is None:
            segment.active_take = take.id
        return Change(segments=frozenset([key]), takes=frozenset([take.id]))

    def undo(self, shot: Shot) -> Change:
        key = (self.take.start_key, self.take.end_key)
        segment = shot.segments[key]
        segment.take_ids.remove(self.take.id)
        segment.active_take = self._previous_active
        segment.takes_made = self._previous_made
        del shot.takes[self.take.id]
        if self._created_segment:
            del shot.segments[key]
        return Change(segments=frozenset([key]), takes=frozenset([self.take.id]))

    def referenced_takes(self) -> list[Take]:
        return [self.take]


def _take(shot: Shot, take_id: str) -> Take:
    take = shot.takes.get(take_id)
    if take is None:
        raise InputError(f"No take '{take_id}' in the shot.")
    return take


class RemoveTake(Command):
    """Drop a take from the document (its files stay until no undo can bring it back)."""

    def __init__(self, take_id: str) -> None:
        self.take_id = take_id
        self.label = "Remove take"
        self._take: Take | None = None
        self._position = 0
        self._previous_active: str | None = None

    def do(self, shot: Shot) -> Change:
        take = _take(shot, self.take_id)
        key = (take.start_key, take.end_key)
        segment = shot.segments[key]
        self._take = take
        self._position = segment.take_ids.index(take.id)
        self._previous_active = segment.active_take
        segment.take_ids.remove(take.id)
        if segment.active_take == take.id:  # fall back to the newest remaining take
            segment.active_take = segment.take_ids[-1] if segment.take_ids else None
        del shot.takes[take.id]
        return Change(segments=frozenset([key]), takes=frozenset([take.id]))

    def undo(self, shot: Shot) -> Change:
        assert self._take is not None
        take = self._take
        key = (take.start_key, take.end_key)
        segment = shot.segments[key]
        shot.takes[take.id] = take
        segment.take_ids.insert(self._position, take.id)
        segment.active_take = self._previous_active
        return Change(segments=frozenset([key]), takes=frozenset([take.id]))

    def referenced_takes(self) -> list[Take]:
        return [self._take] if self._take is not None else []


class RenameTake(Command):
    def __init__(self, take_id: str, label: str) -> None:
        self.take_id = take_id
        self.new_label = label.strip()
        self.label = "Rename take"
        self._before = ""

    def do(self, shot: Shot) -> Change:
        take = _take(shot, self.take_id)
        if len(self.new_label) > 200:
            raise InputError("A take name can have at most 200 characters.")
        self._before = take.label
        take.label = self.new_label
        return Change(takes=frozenset([take.id]))

    def undo(self, shot: Shot) -> Change:
        shot.takes[self.take_id].label = self._before
        return Change(takes=frozenset([self.take_id]))


class SetActiveTake(Command):
    """Choose which take of a segment is shown (None: none, the source drawings show)."""

    def __init__(self, key: SegmentKey, take_id: str | None) -> None:
        self.key: SegmentKey = (key[0], key[1])
        self.take_id = take_id
        self.label = "Switch take"
        self._before: str | None = None

    def do(self, shot: Shot) -> Change:
        segment = shot.segments.get(self.key)
        if segment is None:
            raise InputError("That key pair has no takes yet.")
        if self.take_id is not None and self.take_id not in segment.take_ids:
            raise InputError(f"Take '{self.take_id}' does not belong to that key pair.")
        self._before = segment.active_take
        segment.active_take = self.take_id
        return Change(segments=frozenset([self.key]))

    def undo(self, shot: Shot) -> Change:
        shot.segments[self.key].active_take = self._before
        return Change(segments=frozenset([self.key]))


class SetFrameStatus(Command):
    """Review: mark frames of a take (by index in the take) pending, accepted or rejected."""

    def __init__(self, take_id: str, indices: Iterable[int], status: ReviewStatus | str) -> None:
        self.take_id = take_id
        self.indices = sorted(set(int(i) for i in indices))
        self.status = ReviewStatus(status)
        verb = {"accepted": "Accept", "rejected": "Reject", "pending": "Reset"}[self.status.value]
        self.label = f"{verb} in-between{'s' if len(self.indices) != 1 else ''}"
        self._before: dict[int, ReviewStatus] = {}

    def do(self, shot: Shot) -> Change:
        take = _take(shot, self.take_id)
        bad = [i for i in self.indices if not 0 <= i < len(take.frames)]
        if bad:
            raise InputError(f"Take '{take.label or take.id}' has no frame {bad[0] + 1} "
                             f"(it has {len(take.frames)}).")
        self._before = {i: take.frames[i].status for i in self.indices}
        for i in self.indices:
            take.frames[i].status = self.status
        return Change(takes=frozenset([take.id]))

    def undo(self, shot: Shot) -> Change:
        take = shot.takes[self.take_id]
        for i, status in self._before.items():
            take.frames[i].status = status
        return Change(takes=frozenset([take.id]))


class SetTakeStatus(SetFrameStatus):
    """Review a whole take at once."""

    def __init__(self, take_id: str, status: ReviewStatus | str) -> None:
        super().__init__(take_id, [], status)
        self.label = self.label.rstrip("s") + "s (whole take)"

    def do(self, shot: Shot) -> Change:
        self.indices = list(range(len(_take(shot, self.take_id).frames)))
        return super().do(shot)


class SetShotProperties(Command):
    """Rename the shot or change its frame rate."""

    def __init__(self, name: str | None = None, fps: float | None = None) -> None:
        self.name = name.strip() if name is not None else None
        self.fps = float(fps) if fps is not None else None
        self.label = "Shot properties"
        self._before: tuple[str, float] = ("", 0.0)

    def do(self, shot: Shot) -> Change:
        if self.name is not None and not self.name:
            raise InputError("A shot needs a name.")
        if self.fps is not None and not 0.1 <= self.fps <= 1000:  # NaN fails the comparison too
            raise InputError(f"A frame rate must be between 0.1 and 1000 fps, not {self.fps}.")
        self._before = (shot.name, shot.fps)
        if self.name is not None:
            shot.name = self.name
        if self.fps is not None:
            shot.fps = self.fps
        return Change(shot=True)

    def undo(self, shot: Shot) -> Change:
        shot.name, shot.fps = self._before
        return Change(shot=True)


class ApplyTiming(Command):
    """Re-time the shot from a timing sheet, as one step: the cells, which drawings are keys, each key
    pair's in-between positions, the frame rate, the blank drawings for empty cells and undrawn names,
    and the sheet itself (kept for the fields the cells do not hold). Undo puts back all of it."""

    def __init__(self, cells: list[Cell], keys: Iterable[str], offsets: dict[SegmentKey, list[int]],
                 sheet: Sheet | None, sheet_track: str, add_sources: Iterable[Source] = (),
                 add_drawings: Iterable[Drawing] = (), fps: float | None = None,
                 labels: dict[str, str] | None = None, label: str = "Import timing sheet") -> None:
        self.cells = copy.deepcopy(list(cells))
        self.keys = set(keys)
        self.offsets = {tuple(k): list(v) for k, v in offsets.items()}
        self.sheet = sheet
        self.sheet_track = sheet_track
        self.add_sources = list(add_sources)
        self.add_drawings = list(add_drawings)
        self.fps = float(fps) if fps is not None else None
        self.labels = dict(labels or {})  # drawing id -> the name the sheet gives it
        self.label = label
        self._before: dict[str, Any] = {}

    def do(self, shot: Shot) -> Change:
        added = {d.id for d in self.add_drawings}
        known = set(shot.drawings) | added
        for source in self.add_sources:
            if source.id in shot.sources:
                raise InputError(f"The shot already has a source '{source.id}'.")
        for drawing in self.add_drawings:
            if drawing.id in shot.drawings:
                raise InputError(f"The shot already has a drawing '{drawing.id}'.")
            if drawing.source_id not in shot.sources and drawing.source_id not in {s.id for s in self.add_sources}:
                raise InputError(f"Drawing '{drawing.id}' refers to a source the shot does not have.")
        if not self.cells:
            raise InputError("A timing sheet needs at least one frame.")
        for cell in self.cells:
            if cell.drawing_id not in known:
                raise InputError(f"No drawing '{cell.drawing_id}' in the shot.")
            if not 1 <= cell.length <= MAX_EXPOSURE:
                raise InputError(f"A cell held for {cell.length} frames is outside 1 to {MAX_EXPOSURE}.")
        _check_shot_length(sum(c.length for c in self.cells))
        if self.fps is not None and not 0.1 <= self.fps <= 1000:
            raise InputError(f"A frame rate must be between 0.1 and 1000 fps, not {self.fps}.")
        for key, offsets in self.offsets.items():
            validate_settings(SegmentSettings(offsets=list(offsets)))
            if any(k not in known for k in key):
                raise InputError("In-between positions were given for a key that is not in the shot.")
        if any(d not in shot.drawings for d in self.labels):
            raise InputError("A sheet name was given to a drawing that is not in the shot.")
        stale = [k for k, seg in shot.segments.items() if k not in self.offsets and seg.settings.offsets is not None]
        self._before = {
            "stale": {k: list(shot.segments[k].settings.offsets or []) for k in stale},
            "labels": {d: shot.drawings[d].label for d in self.labels},
            "cells": copy.deepcopy(shot.cells), "keys": {d.id: d.is_key for d in shot.drawings.values()},
            "segments": {k: copy.deepcopy(shot.segments.get(k)) for k in self.offsets},
            "sheet": (shot.sheet, shot.sheet_track), "fps": shot.fps,
        }
        for source in self.add_sources:
            shot.sources[source.id] = copy.deepcopy(source)
        for drawing in self.add_drawings:
            shot.drawings[drawing.id] = copy.deepcopy(drawing)
        shot.cells[:] = copy.deepcopy(self.cells)
        for drawing in shot.drawings.values():
            drawing.is_key = drawing.id in self.keys
        for drawing_id, name in self.labels.items():
            shot.drawings[drawing_id].label = name
        for key in self._before["stale"]:  # marks of an earlier sheet's key pairs go with it
            shot.segments[key].settings.offsets = None
        for key, offsets in self.offsets.items():
            segment = shot.segments.get(key)
            if segment is None:
                segment = shot.segments[key] = Segment(*key)
            segment.settings = dataclasses.replace(copy.deepcopy(segment.settings), offsets=list(offsets))
        shot.sheet, shot.sheet_track = self.sheet, self.sheet_track
        if self.fps is not None:
            shot.fps = self.fps
        return self._change()

    def undo(self, shot: Shot) -> Change:
        before = self._before
        shot.cells[:] = copy.deepcopy(before["cells"])
        for key, segment in before["segments"].items():
            if segment is None:
                shot.segments.pop(key, None)
            else:
                shot.segments[key] = copy.deepcopy(segment)
        for key, offsets in before["stale"].items():
            shot.segments[key].settings.offsets = list(offsets)
        for drawing in self.add_drawings:
            shot.drawings.pop(drawing.id, None)
        for source in self.add_sources:
            shot.sources.pop(source.id, None)
        for drawing_id, was_key in before["keys"].items():
            shot.drawings[drawing_id].is_key = was_key
        for drawing_id, name in before["labels"].items():
            shot.drawings[drawing_id].label = name
        shot.sheet, shot.sheet_track = before["sheet"]
        shot.fps = before["fps"]
        return self._change()

    def _change(self) -> Change:
        touched = frozenset(self.offsets) | frozenset(self._before.get("stale", {}))
        return Change(timeline=True, keys=True, shot=True, segments=touched, sources=True,
                      drawings=frozenset(d.id for d in self.add_drawings) | frozenset(self.keys)
                      | frozenset(self.labels))


# --------------------------------------------------------------------------- the stack

ChangeListener = Callable[[Change], None]
StateListener = Callable[[], None]


@dataclass
class _Macro:
    label: str
    commands: list[Command] = field(default_factory=list)


class CommandStack:
    """Undo history of one shot.

    `index` counts the commands currently applied; `clean_index` is the index at the last save
    (-1 when that state can no longer be reached). `revision` grows with every change to the
    document (do, undo or redo), for autosave.
    """

    def __init__(self, shot: Shot, limit: int | None = None) -> None:
        self.shot = shot
        self.limit = limit
        self._commands: list[Command] = []
        self._index = 0
        self._clean = 0
        self._merge_open = False
        self._macros: list[_Macro] = []
        self._listeners: list[ChangeListener] = []
        self._state_listeners: list[StateListener] = []
        self.revision = 0

    # -- listeners
    def add_listener(self, callback: ChangeListener) -> None:
        """`callback(change)` after every do, undo and redo."""
        self._listeners.append(callback)

    def remove_listener(self, callback: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def add_state_listener(self, callback: StateListener) -> None:
        """`callback()` when can_undo/can_redo/labels/clean may have changed."""
        self._state_listeners.append(callback)

    def remove_state_listener(self, callback: StateListener) -> None:
        with contextlib.suppress(ValueError):
            self._state_listeners.remove(callback)

    def _notify(self, change: Change) -> None:
        self.revision += 1
        for callback in list(self._listeners):
            callback(change)

    def _notify_state(self) -> None:
        for callback in list(self._state_listeners):
            callback()

    # -- queries
    @property
    def index(self) -> int:
        return self._index

    @property
    def clean_index(self) -> int:
        return self._clean

    @property
    def is_clean(self) -> bool:
        return self._index == self._clean and not self._macros

    @property
    def can_undo(self) -> bool:
        return self._index > 0 and not self._macros

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands) and not self._macros

    @property
    def undo_label(self) -> str:
        return self._commands[self._index - 1].label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._commands[self._index].label if self.can_redo else ""

    def __len__(self) -> int:
        return len(self._commands)

    def referenced_take_ids(self) -> set[str]:
        """Every take a command in the history (undo or redo side) adds or removes."""
        return {take.id for take in self.referenced_takes()}

    def referenced_takes(self) -> list[Take]:
        """The Take objects the history can bring back (for keeping the files they use)."""
        return [take for command in self._all_commands() for take in command.referenced_takes()]

    def _all_commands(self) -> list[Command]:
        return self._commands + [c for macro in self._macros for c in macro.commands]

    # -- changes
    def set_clean(self) -> None:
        """Mark the current state as saved."""
        self._clean = self._index
        self._merge_open = False
        self._notify_state()

    def set_dirty(self) -> None:
        """Mark the current state as not saved (e.g. a document recovered from autosave)."""
        self._clean = -1
        self._notify_state()

    def break_merge(self) -> None:
        """End a drag: the next command will not merge into the previous one."""
        self._merge_open = False

    def push(self, command: Command) -> Change:
        """Do `command` and record it. If it raises, nothing is recorded and the shot is unchanged."""
        change = command.do(self.shot)
        if self._macros:
            self._macros[-1].commands.append(command)
            self._notify(change)
            return change
        top = self._commands[self._index - 1] if self._index > 0 else None
        if (self._merge_open and top is not None and command.merge_id is not None
                and top.merge_id == command.merge_id and self._index == len(self._commands)
                and top.merge_with(command)):
            if self._clean == self._index:
                self._clean = -1  # the saved state was folded into the merge
        else:
            self._record(command)
        self._merge_open = command.merge_id is not None
        self._notify(change)
        self._notify_state()
        return change

    def _record(self, command: Command) -> None:
        del self._commands[self._index:]
        if self._clean > self._index:
            self._clean = -1
        self._commands.append(command)
        self._index += 1
        if self.limit is not None and len(self._commands) > self.limit:
            drop = len(self._commands) - self.limit
            del self._commands[:drop]
            self._index -= drop
            self._clean = self._clean - drop if self._clean >= drop else -1

    def undo(self) -> Change:
        if not self.can_undo:
            return NO_CHANGE
        self._merge_open = False
        command = self._commands[self._index - 1]
        change = command.undo(self.shot)
        self._index -= 1
        self._notify(change)
        self._notify_state()
        return change

    def redo(self) -> Change:
        if not self.can_redo:
            return NO_CHANGE
        self._merge_open = False
        command = self._commands[self._index]
        change = command.do(self.shot)
        self._index += 1
        self._notify(change)
        self._notify_state()
        return change

    def begin_macro(self, label: str) -> None:
        self._merge_open = False
        self._macros.append(_Macro(label))

    def end_macro(self) -> None:
        macro = self._macros.pop()
        if not macro.commands:
            return
        compound = Compound(macro.label, macro.commands)  # already done: record without re-doing
        if self._macros:
            self._macros[-1].commands.append(compound)
        else:
            self._record(compound)
            self._notify_state()

    def abort_macro(self) -> None:
        """Undo what the open macro did and forget it."""
        macro = self._macros.pop()
        change = NO_CHANGE
        for command in reversed(macro.commands):
            change |= command.undo(self.shot)
        if not change.empty:
            self._notify(change)

    @contextlib.contextmanager
    def macro(self, label: str) -> Iterator[None]:
        """Commands pushed inside become one undo step; an exception undoes them all."""
        self.begin_macro(label)
        try:
            yield
        except BaseException:
            self.abort_macro()
            raise
        self.end_macro()
