"""The shot document: an exposure sheet of cells that reference drawings, keys, segments and takes.

Model (Pencil2D / OpenToonz style):
- A `Source` is imported pixels: an image sequence, a video or loose images.
- A `Drawing` is one picture: a frame of a source. Drawings are what cells show.
- The timeline is a list of `Cell`s; each shows one drawing for `length` timeline frames
  (1 = on 1s, 2 = on 2s, ...). Timeline frame numbers are derived (1-based), never stored.
- Keys are drawings marked `is_key`. Two keys that follow each other on the timeline bound a
  `Segment`, whose `SegmentSettings` say how to in-between it.
- A `Take` is one generation for a segment: frames (files inside the project folder), each at a
  timeline offset from the start key and a spacing time in (0, 1), with a review status. A segment
  has several takes; the active one overlays the segment's gap on the timeline (see resolve.py).
  Flipping a status never copies pixels.

All mutation goes through commands (commands.py) so that it can be undone. What makes settings
valid lives here, with the document: commands and the file reader both check with it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..core.errors import InputError
from .timing_sheet import Sheet


class ReviewStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SourceKind(StrEnum):
    SEQUENCE = "sequence"  # numbered image files
    VIDEO = "video"
    IMAGES = "images"  # loose files (drag-in)
    BLANK = "blank"  # no files: the empty picture of a timing sheet's empty cells and undrawn names


@dataclass
class Source:
    id: str
    kind: SourceKind
    path: str  # a folder, pattern or video file; relative to the project folder when inside it
    files: list[str] = field(default_factory=list)  # one entry per source frame (sequences, images)
    width: int = 0
    height: int = 0
    fps: float = 24.0
    frame_count: int = 0
    has_alpha: bool = False
    bit_depth: int = 8  # 8 or 16
    gaps: list[int] = field(default_factory=list)  # missing frame numbers found at import
    hashes: dict[str, str] = field(default_factory=dict)  # file name -> content fingerprint (relink.py)
    # (relative path, absolute path) when the relative path was missing at opening and the files are
    # read from the absolute one recorded at saving (a moved copy); said in info, the studio and export
    original_location: tuple[str, str] | None = field(default=None, compare=False)


@dataclass
class Drawing:
    id: str
    source_id: str
    source_frame: int  # 0-based index into the source
    is_key: bool = False
    label: str = ""  # shown in the sheet; defaults to the source frame number


@dataclass
class Cell:
    drawing_id: str
    length: int = 1  # exposure in timeline frames (>= 1)


class Spacing(StrEnum):
    LINEAR = "linear"
    EASE_IN = "ease-in"
    EASE_OUT = "ease-out"
    EASE_IN_OUT = "ease-in-out"
    EXPLICIT = "explicit"


@dataclass
class SketchRef:
    """A rough drawing placed on an in-between cell (sketch guidance): a file inside the project."""

    file: str  # relative to the project folder, e.g. "sketches/<sha256[:16]>.png"
    sha256: str
    name: str = ""  # the file name it was imported from


@dataclass
class SegmentSettings:
    count: int | None = None  # None: derived from the gap and `exposure`
    exposure: int = 2  # in-betweens on 1s, 2s, 3s...
    spacing: Spacing = Spacing.LINEAR
    times: list[float] | None = None  # explicit spacing times in (0, 1) when spacing is EXPLICIT
    engine: str = "flow"
    params: dict[str, Any] = field(default_factory=dict)  # engine parameters (steps, cfg, fit, ...)
    prompt: str = ""
    seed: int | None = None  # None: a new seed is drawn for each generation
    # sketch guidance: in-between offset (timeline frames after the start key) -> sketch; strength
    sketches: dict[int, SketchRef] = field(default_factory=dict)
    sketch_scale: float = 0.6
    # in-between positions a timing sheet asks for (timeline frames after the start key, increasing);
    # [] = the sheet asks for none here; None = no sheet, count and exposure decide
    offsets: list[int] | None = None
    # The path's arc: where the motion passes at mid-segment, as an offset from the straight line
    # between the keys in fractions of the frame's width and height (None: straight). The flow
    # engine bends every shape-moved group's path through it.
    arc: tuple[float, float] | None = None


@dataclass
class TakeFrame:
    file: str  # path relative to the project folder, e.g. "takes/<take id>/0001.png"
    offset: int  # timeline frames after the start key's first frame (1 .. gap-1)
    time: float  # spacing time in (0, 1) given to the engine
    status: ReviewStatus = ReviewStatus.PENDING


@dataclass
class Take:
    id: str
    start_key: str  # drawing ids of the segment's keys
    end_key: str
    frames: list[TakeFrame]
    engine: dict[str, Any]  # engine identity: {"engine": id, "model": ..., "model_hash": ...}
    params: dict[str, Any]  # everything that made it: times, spacing, params, prompt
    seed: int | None
    created: str  # ISO-8601 UTC
    label: str = ""


@dataclass
class Segment:
    start_key: str
    end_key: str
    settings: SegmentSettings = field(default_factory=SegmentSettings)
    take_ids: list[str] = field(default_factory=list)  # in creation order
    active_take: str | None = None
    takes_made: int = 0  # the highest take number given (T<n>): a removed take's label is never reused

    @property
    def key(self) -> tuple[str, str]:
        return (self.start_key, self.end_key)


@dataclass
class Shot:
    name: str = "shot"
    fps: float = 24.0
    width: int = 0
    height: int = 0
    has_alpha: bool = False
    bit_depth: int = 8
    sources: dict[str, Source] = field(default_factory=dict)
    drawings: dict[str, Drawing] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    segments: dict[tuple[str, str], Segment] = field(default_factory=dict)  # settings kept when keys move
    takes: dict[str, Take] = field(default_factory=dict)
    # the imported timing sheet: what the cells do not hold (other tracks, dialogue, camera work,
    # reverse-sheet marks) is kept here, read-only, and written back by the timing-sheet export
    sheet: Sheet | None = None
    sheet_track: str = ""  # the cell track of `sheet` the cells follow

    @property
    def frame_count(self) -> int:
        return sum(cell.length for cell in self.cells)


def check_seed(seed: int | None, what: str = "--seed") -> None:
    """One rule for every seed, from any command or the project: a whole number in [0, 2^63)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= int(seed) < 2**63):
        raise InputError(f"{what} must be a whole number from 0 to 2^63-1, not {seed}.")


def validate_settings(settings: SegmentSettings) -> None:
    """Raise InputError for settings no generation could use (normalises spacing and times)."""
    if settings.count is not None and not (1 <= int(settings.count) <= 1000):
        raise InputError(f"The in-between count must be between 1 and 1000, not {settings.count}.")
    if not 1 <= int(settings.exposure) <= 1000:
        raise InputError(f"The exposure must be at least 1 frame, not {settings.exposure}.")
    try:
        settings.spacing = Spacing(settings.spacing)
    except ValueError:
        names = ", ".join(s.value for s in Spacing)
        raise InputError(f"Unknown spacing '{settings.spacing}'; use one of {names}.") from None
    if settings.times is not None:
        times = [float(t) for t in settings.times]
        if not times:
            raise InputError("Explicit spacing needs at least one time.")
        for t in times:
            if not (0.0 < t < 1.0) or math.isnan(t):
                raise InputError(f"In-between time {t} is outside (0, 1).")
        if any(b <= a for a, b in zip(times, times[1:])):
            raise InputError("Explicit in-between times must increase.")
        settings.times = times
    if settings.spacing == Spacing.EXPLICIT and not settings.times:
        raise InputError("Explicit spacing needs a list of times.")
    check_seed(settings.seed, "A seed")
    if not isinstance(settings.params, dict):
        raise InputError("Engine parameters must be a mapping of names to values.")
    if not settings.engine:
        raise InputError("No engine was chosen for the segment.")
    if not (0.0 <= float(settings.sketch_scale) <= 1.5):
        raise InputError(f"The sketch strength must be between 0 and 1.5, not {settings.sketch_scale}.")
    if any(not isinstance(o, int) or o < 1 for o in settings.sketches):
        raise InputError("Sketches sit on in-between frames after the start key (1 or more).")
    if settings.offsets is not None:
        offsets = settings.offsets
        if any(isinstance(o, bool) or not isinstance(o, int) or o < 1 for o in offsets) \
                or any(b <= a for a, b in zip(offsets, offsets[1:])) or len(offsets) > 1000:
            raise InputError("In-between positions sit after the start key (1 or more), increasing, "
                             "at most 1000 of them.")
        settings.offsets = list(offsets)
    if settings.arc is not None:
        settings.arc = check_arc(settings.arc)


def check_arc(value: Any) -> tuple[float, float] | None:
    """A segment's arc as (x, y) fractions of the frame, each from -1 to 1; (0, 0) is straight (None)."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"A path arc is two numbers (x, y), not {value!r}.") from None
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in (x, y)):
        raise InputError(f"A path arc's offsets are fractions of the frame, from -1 to 1 (got {x:g}, {y:g}).")
    return None if (x, y) == (0.0, 0.0) else (x, y)


SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(SegmentSettings))


def segment_settings(shot: Shot, key: tuple[str, str]) -> SegmentSettings:
    """The settings of a key pair (defaults for a pair never edited). Read-only view: do not mutate."""
    segment = shot.segments.get(tuple(key))
    return segment.settings if segment is not None else SegmentSettings()
