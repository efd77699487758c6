"""A timing sheet as data: tracks of entries written where something changes, as XDTS stores them.

A sheet has a duration (frames) and tracks. Each track belongs to a field: 0 = cells (which drawing
each frame shows), 3 = dialogue, 5 = camera work. A track lists entries only at the frames where its
value changes; a drawing is held until the next entry. Cell tracks use four symbols besides drawing
names: `SYMBOL_NULL_CELL` (nothing shown), `SYMBOL_HYPHEN` (carry on: the same as no entry),
`SYMBOL_TICK_1` (the in-between mark: a drawing to in-between goes on this frame) and
`SYMBOL_TICK_2` (the reverse-sheet mark: in-betweens already drawn are reused in reverse order).

The sheet carries no frame rate (XDTS has none). A pure module: the file formats are read and
written in export/sheet_io.py, the shot keeps the imported sheet (`Shot.sheet`) so that the fields
it does not use (other tracks, dialogue, camera work) are never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.limits import MAX_SHOT_FRAMES

SYMBOL_NULL_CELL = "SYMBOL_NULL_CELL"
SYMBOL_HYPHEN = "SYMBOL_HYPHEN"
SYMBOL_TICK_1 = "SYMBOL_TICK_1"
SYMBOL_TICK_2 = "SYMBOL_TICK_2"
SYMBOLS = frozenset({SYMBOL_NULL_CELL, SYMBOL_HYPHEN, SYMBOL_TICK_1, SYMBOL_TICK_2})
OPTION_KEYFRAME = "OPTION_KEYFRAME"

FIELD_CELL = 0
FIELD_DIALOGUE = 3
FIELD_CAMERA = 5
FIELD_NAMES = {FIELD_CELL: "cells", FIELD_DIALOGUE: "dialogue", FIELD_CAMERA: "camera work"}

# Limits of a sheet (a real one is a few hundred entries; these leave room for a feature film's cut).
MAX_SHEET_FILE_BYTES = 16 << 20
MAX_SHEET_TRACKS = 1000
MAX_SHEET_ENTRIES = 200_000  # entries of all tracks together (16 MiB holds about 400,000)
MAX_SHEET_VALUES = 16  # values of one entry
MAX_SHEET_TEXT = 1000  # characters of one value or name
MAX_SHEET_DEPTH = 32  # nesting of the XDTS JSON (a real file is 12 deep)


@dataclass(frozen=True)
class SheetEntry:
    frame: int  # 0-based
    values: tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def is_key(self) -> bool:
        return OPTION_KEYFRAME in self.options


@dataclass(frozen=True)
class SheetTrack:
    field_id: int
    number: int  # the track's number in its field (XDTS trackNo)
    name: str
    entries: tuple[SheetEntry, ...]


@dataclass(frozen=True)
class Sheet:
    duration: int
    tracks: tuple[SheetTrack, ...]
    name: str = ""  # the time table's name
    cut: str = ""
    scene: str = ""
    source_format: str = "xdts"  # xdts, csv (ours), csv-frame (a Frame column), csv-tvpaint
    fps: float | None = None  # only CSV sheets can say
    notes: tuple[str, ...] = field(default=(), compare=False)  # what the reader left out, in words

    @property
    def cell_tracks(self) -> list[SheetTrack]:
        return [t for t in self.tracks if t.field_id == FIELD_CELL]

    @property
    def other_tracks(self) -> list[SheetTrack]:
        return [t for t in self.tracks if t.field_id != FIELD_CELL]

    def cell_track(self, name: str | None = None) -> SheetTrack:
        """The cell track called `name` (default: the first); KeyError naming the choices."""
        tracks = self.cell_tracks
        if not tracks:
            raise KeyError("no cell track")
        if name is None:
            return tracks[0]
        for track in tracks:
            if track.name == name:
                return track
        raise KeyError(f"no cell track '{name}' (its cell tracks: {', '.join(t.name for t in tracks)})")


# --------------------------------------------------------------------------- cell tracks


def normalize_cells(entries: list[SheetEntry] | tuple[SheetEntry, ...], duration: int) -> tuple[SheetEntry, ...]:
    """A cell track's entries in the one form every writer agrees on.

    Sorted by frame (the last entry wins at one frame); an entry before frame 0 (Clip Studio writes
    them) starts the track at frame 0; entries at or past the end dropped; hyphens dropped (they mean
    "carry on"); an entry that repeats what is already shown (the same drawing, a second null cell,
    a null cell at the start) dropped. Marks are always kept: each one is an instruction.
    """
    by_frame: dict[int, SheetEntry] = {}
    before_start: SheetEntry | None = None
    for entry in sorted(entries, key=lambda e: e.frame):
        if entry.value == SYMBOL_HYPHEN or not entry.values:
            continue
        if entry.frame < 0:
            before_start = entry
        elif entry.frame < duration:
            by_frame[entry.frame] = entry
    if before_start is not None and 0 not in by_frame and duration > 0:
        by_frame[0] = SheetEntry(0, before_start.values, before_start.options)
    out: list[SheetEntry] = []
    current = SYMBOL_NULL_CELL
    for frame in sorted(by_frame):
        entry = by_frame[frame]
        value = entry.value
        if value not in (SYMBOL_TICK_1, SYMBOL_TICK_2) and value == current and not entry.is_key:
            continue
        out.append(SheetEntry(frame, (value,), tuple(o for o in entry.options if o == OPTION_KEYFRAME)))
        current = value
    return tuple(out)


@dataclass(frozen=True)
class Exposure:
    """A run of frames of a cell track: what starts at `start` and lasts `length` frames."""

    start: int  # 0-based
    length: int
    kind: str  # "drawing", "empty", "inbetween" (tick 1) or "reverse" (tick 2)
    name: str = ""  # the drawing's name (drawings)
    key: bool = False  # the sheet marks it a key (OPTION_KEYFRAME)


def exposures(track: SheetTrack, duration: int) -> list[Exposure]:
    """The runs of a cell track, covering frames 0..duration-1 (empty before the first entry)."""
    entries = normalize_cells(track.entries, duration)
    runs: list[Exposure] = []
    starts = [e.frame for e in entries] + [duration]
    if not entries or entries[0].frame > 0:
        runs.append(Exposure(0, starts[0], "empty"))
    for entry, end in zip(entries, starts[1:]):
        value = entry.value
        if value == SYMBOL_NULL_CELL:
            kind, name = "empty", ""
        elif value == SYMBOL_TICK_1:
            kind, name = "inbetween", ""
        elif value == SYMBOL_TICK_2:
            kind, name = "reverse", ""
        else:
            kind, name = "drawing", value
        runs.append(Exposure(entry.frame, end - entry.frame, kind, name, entry.is_key))
    return [run for run in runs if run.length > 0]


def cells_track(number: int, name: str, runs: list[Exposure], duration: int) -> SheetTrack:
    """A cell track from its runs (the inverse of `exposures`)."""
    entries: list[SheetEntry] = []
    for run in runs:
        value = {"empty": SYMBOL_NULL_CELL, "inbetween": SYMBOL_TICK_1, "reverse": SYMBOL_TICK_2}.get(run.kind,
                                                                                                      run.name)
        entries.append(SheetEntry(run.start, (value,), (OPTION_KEYFRAME,) if run.key else ()))
    return SheetTrack(FIELD_CELL, number, name, normalize_cells(entries, duration))


def normalized(sheet: Sheet) -> Sheet:
    """The sheet with every cell track in normal form and the tracks in field/number order (for
    comparing two sheets: equal timing, whatever the writer)."""
    tracks = tuple(sorted(
        (SheetTrack(t.field_id, t.number, t.name, normalize_cells(t.entries, sheet.duration))
         if t.field_id == FIELD_CELL else t for t in sheet.tracks),
        key=lambda t: (t.field_id, t.number)))
    return Sheet(sheet.duration, tracks, sheet.name, sheet.cut, sheet.scene, sheet.source_format, sheet.fps)


# --------------------------------------------------------------------------- storing in project.json


def sheet_to_dict(sheet: Sheet) -> dict:
    return {
        "duration": sheet.duration, "name": sheet.name, "cut": sheet.cut, "scene": sheet.scene,
        "format": sheet.source_format, "fps": sheet.fps,
        "tracks": [{"field": t.field_id, "number": t.number, "name": t.name,
                    "entries": [[e.frame, list(e.values), *([list(e.options)] if e.options else [])]
                                for e in t.entries]}
                   for t in sheet.tracks],
    }


class SheetDataError(ValueError):
    """A stored sheet that does not hold together (project.json says which place)."""


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_SHEET_TEXT:
        raise SheetDataError(f"{where} should be text of at most {MAX_SHEET_TEXT} characters")
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SheetDataError(f"{where} should be a whole number from {low} to {high}")
    return value


def sheet_from_dict(data: object, where: str = "sheet") -> Sheet:
    """The inverse of `sheet_to_dict`, checking every size; SheetDataError names the place."""
    if not isinstance(data, dict):
        raise SheetDataError(f"{where} should be an object")
    duration = _int(data.get("duration"), f"{where}.duration", 1, MAX_SHOT_FRAMES)
    raw_tracks = data.get("tracks", [])
    if not isinstance(raw_tracks, list) or len(raw_tracks) > MAX_SHEET_TRACKS:
        raise SheetDataError(f"{where}.tracks should be a list of at most {MAX_SHEET_TRACKS} tracks")
    tracks = []
    total = 0
    for i, item in enumerate(raw_tracks):
        here = f"{where}.tracks[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("entries"), list):
            raise SheetDataError(f"{here} should be an object with a list of entries")
        total += len(item["entries"])
        if total > MAX_SHEET_ENTRIES:
            raise SheetDataError(f"{where} has more than {MAX_SHEET_ENTRIES:,} entries")
        entries = []
        for j, raw in enumerate(item["entries"]):
            spot = f"{here}.entries[{j}]"
            if not isinstance(raw, list) or len(raw) not in (2, 3) or not isinstance(raw[1], list) \
                    or len(raw[1]) > MAX_SHEET_VALUES or (len(raw) == 3 and not isinstance(raw[2], list)):
                raise SheetDataError(f"{spot} should be [frame, [values], [options]]")
            options = raw[2] if len(raw) == 3 else []
            entries.append(SheetEntry(_int(raw[0], spot, -MAX_SHOT_FRAMES, MAX_SHOT_FRAMES),
                                      tuple(_text(v, spot) for v in raw[1]),
                                      tuple(_text(o, spot) for o in options[:MAX_SHEET_VALUES])))
        tracks.append(SheetTrack(_int(item.get("field"), f"{here}.field", 0, 1000),
                                 _int(item.get("number"), f"{here}.number", 0, MAX_SHEET_TRACKS),
                                 _text(item.get("name", ""), f"{here}.name"), tuple(entries)))
    fps = data.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0.1 <= fps <= 1000):
        raise SheetDataError(f"{where}.fps should be a frame rate from 0.1 to 1000")
    return Sheet(duration, tuple(tracks), _text(data.get("name", ""), f"{where}.name"),
                 _text(data.get("cut", ""), f"{where}.cut"), _text(data.get("scene", ""), f"{where}.scene"),
                 _text(data.get("format", "xdts"), f"{where}.format"), float(fps) if fps is not None else None)
