"""Jobs: what to generate, fixed when the job is made so a worker thread never reads the live shot.

A job is either a segment of a project (its two keys, the in-between times and the timeline
offsets the take frames will sit on) or two loose images. Times come from the in-between count
and the spacing (project/spacing.py) or are given explicitly. Offsets place the frames on the
timeline: with a count derived from the gap and the exposure they sit on the exposure grid
(exposure, 2*exposure, ...); with a hand-set count they are spread evenly over the gap.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import InputError
from ..core.frame_ranges import parse_frame_pair
from ..project.document import (
    ReviewStatus,
    SegmentSettings,
    Shot,
    Source,
    Spacing,
    TakeFrame,
    segment_settings,
)
from ..project.resolve import SegmentSpan, cell_at, derived_count, key_spans
from ..project.spacing import inbetween_times

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..project.project import Project


@dataclass(frozen=True)
class KeyRef:
    """Where a key's pixels are: a frame of a source (copied), or an image in memory."""

    source: Source | None = None
    index: int = 0
    image: np.ndarray | None = None
    drawing_id: str = ""
    frame: int = 0  # timeline frame (project jobs)


@dataclass
class InbetweenPlan:
    times: list[float]
    offsets: list[int]
    count_mode: str  # "derived" (gap and exposure), "hand" (a set count), "explicit" (times given) or "sheet"


@dataclass(frozen=True)
class SketchFile:
    """A sketch of the segment for the in-between at `time` (cell `offset` after the start key)."""

    offset: int
    time: float
    path: Path
    sha256: str
    name: str = ""


def segment_sketches(project: Project, settings: SegmentSettings, plan_offsets: list[int], plan_times: list[float],
                     gap: int) -> list[SketchFile]:
    """The segment's sketches at the times of their cells: the in-between's time where one sits at
    that offset, otherwise the cell's linear position (offset / gap); sketches past the end key
    (the gap shrank) are left out with a log line."""
    out = []
    for offset, ref in sorted(settings.sketches.items()):
        if not 0 < offset < gap:
            log.warning("A sketch %d frames after the key lies outside the segment (%d frames); not used.", offset, gap)
            continue
        time = plan_times[plan_offsets.index(offset)] if offset in plan_offsets else offset / gap
        out.append(SketchFile(offset, float(time), project.path_of(ref.file), ref.sha256, ref.name))
    return out


class TakeReservation:
    """A take id reserved in a project (so garbage collection spares its folder while the job runs),
    released exactly once: when the take is in the shot, or on any failure or cancel."""

    def __init__(self, take_id: str, release: Callable[[str], None], project_file: Path | None = None) -> None:
        self.take_id = take_id
        self.project_file = project_file  # tells whose reservation it is, without holding the project
        self._release = release
        self._lock = threading.Lock()
        self.released = False

    def release(self) -> None:
        with self._lock:
            if self.released:
                return
            self.released = True
        self._release(self.take_id)


@dataclass
class Job:
    engine_id: str
    times: list[float]
    start: KeyRef
    end: KeyRef
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prompt: str = ""
    spacing: str = "linear"
    # project jobs
    folder: Path | None = None
    segment: tuple[str, str] | None = None
    offsets: list[int] = field(default_factory=list)
    gap: int = 0
    exposure: int = 0
    count_mode: str = ""
    reservation: TakeReservation | None = None  # the new take's id, reserved when the job is made
    kept_frames: list[TakeFrame] = field(default_factory=list)  # redo-rejected: the frames kept as they are
    kept_from: str = ""  # ... and the take they come from
    redone_files: list[str] = field(default_factory=list)  # ... and the rejected drawings being redrawn
    has_alpha: bool = False  # the shot's pixel format: keys are conformed to it
    bit_depth: int = 8
    sketches: list[SketchFile] = field(default_factory=list)  # sketch guidance (project jobs)
    sketch_scale: float = 0.6

    @property
    def take_id(self) -> str | None:
        return self.reservation.take_id if self.reservation is not None else None

    def release(self) -> None:
        """Give the reserved take id back (idempotent); every path that ends a job calls it."""
        if self.reservation is not None:
            self.reservation.release()

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def description(self) -> str:
        if self.segment is not None:
            return f"frames {self.start.frame}-{self.end.frame}"
        return "two images"


def _spacing(name: str) -> Spacing:
    try:
        return Spacing(name)
    except ValueError:
        names = ", ".join(s.value for s in Spacing if s != Spacing.EXPLICIT)
        raise InputError(f"Unknown spacing '{name}'. Use one of: {names}.") from None


def _spread(gap: int, count: int) -> list[int]:
    # floor(x + 0.5): Python's round() rounds halves to even and could put two frames on one offset.
    return [math.floor(i * gap / (count + 1) + 0.5) for i in range(1, count + 1)]


def plan_inbetweens(gap: int, settings: SegmentSettings, count: int | None = None, spacing: str | None = None,
                    times: list[float] | None = None, offsets: list[int] | None = None) -> InbetweenPlan:
    """Times and timeline offsets for a segment `gap` frames long, with optional overrides.

    `offsets` places the frames by hand (e.g. redrawing only the rejected frames of a take).
    """
    if settings.offsets is not None and count is None and spacing is None and times is None and offsets is None:
        return sheet_plan(gap, settings.offsets)
    spacing_name = str(_spacing(spacing if spacing is not None else settings.spacing).value)
    if times is None and spacing is None and settings.spacing == Spacing.EXPLICIT:
        times = settings.times
    if times is not None:
        mode = "explicit"
        values = inbetween_times(0, "linear", times)
        spacing_name = "explicit"
    else:
        if spacing_name == "explicit":
            raise InputError("Explicit spacing needs a list of times.")
        hand = count if count is not None else settings.count
        if hand is not None:
            mode, n = "hand", int(hand)
        else:
            mode, n = "derived", derived_count(gap, settings.exposure)
            if n < 1:
                advice = ("Set a count or a shorter exposure." if gap > 1
                          else "Insert frames between the keys first.")  # a count cannot help
                raise InputError(f"The keys are {_frames(gap)} apart: no in-between fits "
                                 f"on {settings.exposure}s. {advice}")
        values = inbetween_times(n, spacing_name)
    n = len(values)
    if n > gap - 1:
        raise InputError(f"{n} in-between{'s do' if n != 1 else ' does'} not fit between keys "
                         f"{_frames(gap)} apart (at most {max(0, gap - 1)}, one per frame).")
    exposure = max(1, int(settings.exposure))
    if offsets is not None:
        placed = [int(o) for o in offsets]
        if len(placed) != n:
            raise InputError(f"{len(placed)} frame positions were given for {n} in-betweens.")
        if any(not 0 < o < gap for o in placed) or any(b <= a for a, b in zip(placed, placed[1:])):
            raise InputError(f"In-between positions must increase and lie between the keys (1 to {gap - 1}).")
        return InbetweenPlan(values, placed, mode)
    if mode == "derived" or (mode == "explicit" and count is None and settings.count is None
                             and n == derived_count(gap, exposure)):
        offsets = [exposure * (i + 1) for i in range(n)]
    else:
        offsets = _spread(gap, n)
    return InbetweenPlan(values, offsets, mode)


def sheet_plan(gap: int, offsets: list[int]) -> InbetweenPlan:
    """The in-betweens a timing sheet marks: on exactly those frames, each at its place in the gap
    (a mark 2 frames into an 8-frame gap is the in-between at 0.25)."""
    if not offsets:
        raise InputError("The timing sheet marks no in-betweens between these keys; give --count or --times "
                         "to make some anyway.")
    if offsets[-1] >= gap:
        raise InputError(f"The timing sheet's in-between marks ({', '.join(map(str, offsets))} frames after the "
                         f"key) no longer fit between keys {_frames(gap)} apart; import the sheet again or set a "
                         "count.")
    return InbetweenPlan([o / gap for o in offsets], list(offsets), "sheet")


def _frames(n: int) -> str:
    return f"{n} frame{'s' if n != 1 else ''}"


def _key_ref(shot: Shot, drawing_id: str, frame: int) -> KeyRef:
    drawing = shot.drawings[drawing_id]
    source = copy.deepcopy(shot.sources[drawing.source_id])
    return KeyRef(source=source, index=drawing.source_frame, drawing_id=drawing_id, frame=frame)


def segment_job(project: Project, span: SegmentSpan | tuple[str, str], *, count: int | None = None,
                spacing: str | None = None, times: list[float] | None = None, offsets: list[int] | None = None,
                engine: str | None = None,
                params: dict[str, Any] | None = None, seed: int | None = None,
                prompt: str | None = None) -> Job:
    """A job for one key pair of the project, from its segment settings plus any overrides.

    Reserves a take id in the project (released when the result is applied or the job fails).
    Call on the thread that owns the project.
    """
    shot = project.shot
    if not isinstance(span, SegmentSpan):
        found = [s for s in key_spans(shot) if s.key == tuple(span)]
        if not found:
            raise InputError("Those two drawings are not neighbouring keys of the shot.")
        span = found[0]
    settings = segment_settings(shot, span.key)
    plan = plan_inbetweens(span.gap, settings, count, spacing, times, offsets)
    merged_params = {**copy.deepcopy(settings.params), **(params or {})}
    engine_id = engine or settings.engine or "flow"
    if settings.arc is not None and engine_id == "flow":  # the only engine that bends paths
        merged_params.setdefault("arc", list(settings.arc))
    job = Job(
        engine_id=engine_id,
        times=plan.times,
        start=_key_ref(shot, span.start_key, span.start_frame),
        end=_key_ref(shot, span.end_key, span.start_frame + span.gap),
        params=merged_params,
        seed=seed if seed is not None else settings.seed,
        prompt=prompt if prompt is not None else settings.prompt,
        spacing="explicit" if plan.count_mode == "explicit" else str(_spacing(spacing or settings.spacing).value),
        folder=project.folder,
        segment=span.key,
        offsets=plan.offsets,
        gap=span.gap,
        exposure=settings.exposure,
        count_mode=plan.count_mode,
        has_alpha=shot.has_alpha,
        bit_depth=shot.bit_depth,
        sketches=segment_sketches(project, settings, list(plan.offsets), list(plan.times), span.gap),
        sketch_scale=settings.sketch_scale,
    )
    job.reservation = TakeReservation(project.new_take_id(), project.release_take_id, project.project_file)
    return job


def redo_rejected_job(project: Project, span: SegmentSpan, take_id: str | None = None, *,
                      seed: int | None = None, engine: str | None = None,
                      params: dict[str, Any] | None = None) -> Job:
    """A job that redraws only the rejected frames of a take (default: the segment's active one);
    the new take keeps every other frame of it as it is (files referenced, not copied)."""
    shot = project.shot
    segment = shot.segments.get(span.key)
    take_id = take_id or (segment.active_take if segment is not None else None)
    if take_id is None or take_id not in shot.takes:
        raise InputError("This key pair has no take to fix yet.")
    take = shot.takes[take_id]
    rejected = [tf for tf in take.frames if tf.status == ReviewStatus.REJECTED]
    if not rejected:
        raise InputError(f"No frame of take {take.label or take.id} is rejected, so there is nothing to redo.")
    job = segment_job(project, span, times=[tf.time for tf in rejected], offsets=[tf.offset for tf in rejected],
                      seed=seed, engine=engine, params=params)
    job.kept_frames = [replace(tf) for tf in take.frames if tf.status != ReviewStatus.REJECTED]
    job.kept_from = take.id
    job.redone_files = [tf.file for tf in rejected]
    return job


def image_job(start: np.ndarray, end: np.ndarray, times: list[float], engine: str = "flow",
              params: dict[str, Any] | None = None, seed: int | None = None, prompt: str = "",
              spacing: str = "explicit") -> Job:
    """A job on two loose images; the result's frames stay in memory (nothing is written)."""
    return Job(engine_id=engine, times=inbetween_times(0, "linear", times), start=KeyRef(image=start),
               end=KeyRef(image=end), params=dict(params or {}), seed=seed, prompt=prompt, spacing=spacing,
               has_alpha=start.ndim == 3 and start.shape[2] == 4,
               bit_depth=16 if start.dtype == np.uint16 else 8)


def parse_pair(shot: Shot, text: str) -> SegmentSpan:
    """'A:B' (timeline frames of two neighbouring keys) -> the segment; clear errors otherwise."""
    a, b = parse_frame_pair(text)  # the shared frame parser: ASCII digits, bounded
    spans = key_spans(shot)
    key_frames = sorted({s.start_frame for s in spans} | {s.start_frame + s.gap for s in spans})
    listed = ", ".join(str(f) for f in key_frames) or "none"

    def key_at(frame: int) -> str:
        try:
            index, _ = cell_at(shot, frame)
        except IndexError:
            raise InputError(f"Frame {frame} is outside the shot (frames 1 to {shot.frame_count}).") from None
        drawing_id = shot.cells[index].drawing_id
        if not shot.drawings[drawing_id].is_key:
            raise InputError(f"Frame {frame} is not a key (keys are at frames {listed}).")
        return drawing_id

    start, end = key_at(a), key_at(b)
    for span in spans:
        if (span.start_key, span.end_key) == (start, end) and \
                cell_at(shot, a)[1] == span.start_frame and cell_at(shot, b)[1] == span.start_frame + span.gap:
            return span
    raise InputError(f"Frames {a} and {b} are not neighbouring keys (keys are at frames {listed}).")
