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

All mutation goes through commands (commands.py) so that it can be undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ReviewStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SourceKind(StrEnum):
    SEQUENCE = "sequence"  # numbered image files
    VIDEO = "video"
    IMAGES = "images"  # loose files (drag-in)


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

    @property
    def frame_count(self) -> int:
        return sum(cell.length for cell in self.cells)
