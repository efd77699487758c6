"""A timing sheet onto a shot (import) and a shot's timing back into a sheet (export).

Import (`plan_import`): one cell track of the sheet becomes the shot's cells. Each name on the sheet
is matched to a drawing of the shot by name or number (`A1`, `1` and `0001` all find `A_0001.png`;
a bare number prefers the drawings whose prefix is the track's name); a name that fits no drawing,
or several, gets a blank placeholder that keeps its name, and is listed — never guessed. Empty
cells show a blank drawing. The drawn cells are the keys, unless the sheet marks keys itself
(XDTS `OPTION_KEYFRAME`, the kind column of our CSV). Each in-between mark (`SYMBOL_TICK_1`) between
two keys becomes one of that key pair's in-between positions, so generating makes exactly the
marked frames; a key pair without marks gets none. The plan is applied as one undoable command.

Export (`shot_sheet`): the cells and each key pair's in-between positions as a cell track, with
the imported sheet's other tracks, dialogue, camera work and reverse-sheet marks as they came in,
so that an imported sheet exports back equal.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from ..core.errors import InputError
from ..core.limits import MAX_EXPOSURE
from ..project.commands import ApplyTiming
from ..project.document import Cell, Drawing, Shot, Source, SourceKind
from ..project.resolve import is_blank, key_spans
from ..project.timing_sheet import (
    FIELD_CAMERA,
    FIELD_CELL,
    FIELD_DIALOGUE,
    FIELD_NAMES,
    SYMBOL_HYPHEN,
    SYMBOL_NULL_CELL,
    SYMBOL_TICK_1,
    SYMBOL_TICK_2,
    Exposure,
    Sheet,
    SheetTrack,
    cells_track,
    exposures,
)

_NUMBERED = re.compile(r"^(.*?)[\s_.\-]*(\d+)$")
_IMAGE_SUFFIXES = {".png", ".tga", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".exr", ".psd", ".webp"}


def _split(name: str) -> tuple[str, int] | None:
    match = _NUMBERED.match(name.strip())
    if match is None or len(match.group(2)) > 9:
        return None
    return match.group(1).casefold(), int(match.group(2))


class DrawingIndex:
    """Finds the drawing a sheet's name means, by exact name first, then by prefix and number."""

    def __init__(self, shot: Shot, displayed: bool = False) -> None:
        """displayed: also the name our own sheets print for a drawing without a label (its source frame
        number), for re-reading a sheet this app wrote."""
        self.exact: dict[str, set[str]] = {}
        self.numbered: dict[int, list[tuple[str, str]]] = {}  # number -> (prefix, drawing id)
        for drawing in shot.drawings.values():
            if is_blank(shot, drawing.id):
                continue
            source = shot.sources.get(drawing.source_id)
            names = {drawing.label or (f"{drawing.source_frame + 1:04d}" if displayed else "")}
            if source is not None and 0 <= drawing.source_frame < len(source.files):
                names.add(PurePath(source.files[drawing.source_frame]).stem)
            for name in filter(None, names):
                self.exact.setdefault(name.casefold(), set()).add(drawing.id)
                split = _split(name)
                if split is not None:
                    self.numbered.setdefault(split[1], []).append((split[0], drawing.id))

    def find(self, name: str, track: str) -> tuple[str | None, str]:
        """(drawing id, "") or (None, why not)."""
        name = name.strip()
        suffix = PurePath(name).suffix.lower()
        if suffix in _IMAGE_SUFFIXES:  # TVPaint's sheets name the image file: frame00001-00003.png
            name = name[: -len(suffix)]
        exact = self.exact.get(name.casefold(), set())
        if len(exact) == 1:
            return next(iter(exact)), ""
        split = _split(name)
        if split is None:
            return None, "no drawing has that name" if not exact else "several drawings have that name"
        prefix, number = split
        candidates = {(p, d) for p, d in self.numbered.get(number, [])}
        folded_track = track.strip().casefold()
        for wanted in ([prefix] if prefix not in ("", folded_track) else [prefix, folded_track, ""]):
            found = {d for p, d in candidates if p.rstrip(" _.-") == wanted}
            if len(found) == 1:
                return next(iter(found)), ""
            if len(found) > 1:
                return None, f"{len(found)} drawings are numbered {number}"
        prefixes = {p.rstrip(" _.-") for group in self.numbered.values() for p, _d in group}
        if not prefix and len(prefixes) == 1:  # one family of drawings (A_0001...): "1" can only mean A_0001
            found = {d for _p, d in candidates}
            if len(found) == 1:
                return next(iter(found)), ""
        if not prefix and len(prefixes) > 1 and candidates:
            families = sorted({p.rstrip(" _.-") for p, _d in candidates})
            if len(families) == 1:
                return None, (f"the only drawing numbered {number} is of another family ('{families[0]}'), "
                              f"not of the track '{track}'")
            return None, (f"drawings of {len(families)} families ({', '.join(families)}) are numbered {number}, "
                          f"none of the track '{track}'")
        return None, "no drawing has that name or number"


@dataclass
class TimingPlan:
    """What importing a sheet will do; `command()` makes it one undoable edit."""

    sheet: Sheet
    track: SheetTrack
    cells: list[Cell]
    keys: set[str]
    offsets: dict[tuple[str, str], list[int]]
    add_sources: list[Source]
    add_drawings: list[Drawing]
    fps: float | None
    unmatched: dict[str, tuple[list[int], str]] = field(default_factory=dict)  # name -> (1-based frames, why)
    matched: dict[str, str] = field(default_factory=dict)  # sheet name -> drawing id
    other_tracks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # read-only fields, marks that cannot be used, reader notes
    marks: list[int] = field(default_factory=list)  # 1-based frames of usable in-between marks
    holds: int = 0  # cells held longer than one frame
    empties: int = 0  # frames with nothing shown

    @property
    def inbetweens(self) -> int:
        """In-between frames generation will make (a key pair that recurs makes its marks each time)."""
        return len(self.marks)

    def command(self) -> ApplyTiming:
        labels: dict[str, str] = {}
        for name, drawing_id in self.matched.items():
            labels.setdefault(drawing_id, name)  # the timeline and the exported sheet use the sheet's names
        return ApplyTiming(self.cells, self.keys, self.offsets, self.sheet, self.track.name, self.add_sources,
                           self.add_drawings, self.fps, labels, label=f"Import timing sheet ({self.track.name})")

    def summary(self) -> list[str]:
        frames = sum(c.length for c in self.cells)
        lines = [f"Track '{self.track.name}': {frames} frames, {len(self.cells)} cells ({self.holds} held), "
                 f"{len(self.keys)} key drawings, {self.inbetweens} in-between frames to generate"
                 + (f", {self.empties} empty frames" if self.empties else "") + "."]
        if self.marks:
            lines.append("In-betweens on frames " + _frame_list(self.marks) + ".")
        for name, (frames_of, why) in self.unmatched.items():
            lines.append(f"Unmatched cell '{name}' on frames {_frame_list(frames_of)}: {why}; it shows blank.")
        if self.other_tracks:
            lines.append("Other cell tracks not imported (kept in the sheet): " + ", ".join(self.other_tracks) + ".")
        lines += self.notes
        return lines


def _frame_list(frames: list[int], limit: int = 20) -> str:
    text = ", ".join(map(str, frames[:limit]))
    return text + (f" and {len(frames) - limit} more" if len(frames) > limit else "")


def _unique_id(wanted: str, taken: set[str]) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    taken.add(candidate)
    return candidate


def plan_import(shot: Shot, sheet: Sheet, track_name: str | None = None, fps: float | None = None) -> TimingPlan:
    """How the shot changes when timed by `sheet` (one of its cell tracks; default the first)."""
    try:
        track = sheet.cell_track(track_name)
    except KeyError as exc:
        raise InputError(f"The timing sheet has {exc.args[0]}.") from None  # args[0]: str() is a repr
    if fps is not None and not 0.1 <= fps <= 1000:
        raise InputError(f"--fps must be between 0.1 and 1000, not {fps:g}.")
    runs = exposures(track, sheet.duration)
    index = DrawingIndex(shot, displayed=sheet.source_format == "csv")
    taken_ids = set(shot.drawings)
    blank = next((s for s in shot.sources.values() if s.kind == SourceKind.BLANK), None)
    add_sources: list[Source] = []
    if blank is None:
        blank = Source(id=_unique_id("blank", set(shot.sources)), kind=SourceKind.BLANK, path="", files=[],
                       width=shot.width, height=shot.height, fps=shot.fps, frame_count=1,
                       has_alpha=shot.has_alpha, bit_depth=shot.bit_depth)
    blanks = {d.label: d.id for d in shot.drawings.values() if d.source_id == blank.id}
    add_drawings: list[Drawing] = []

    def blank_drawing(label: str) -> str:
        if label not in blanks:
            wanted = "empty" if not label else "undrawn-" + re.sub(r"[^A-Za-z0-9_-]", "_", label)[:40]
            drawing = Drawing(_unique_id(wanted, taken_ids), blank.id, 0, label=label)
            add_drawings.append(drawing)
            blanks[label] = drawing.id
            if not add_sources and blank.id not in shot.sources:
                add_sources.append(blank)
        return blanks[label]

    plan = TimingPlan(sheet, track, [], set(), {}, add_sources, add_drawings,
                      fps if fps is not None else sheet.fps)
    sheet_keys = any(run.key for run in runs)
    cells: list[Cell] = []
    cell_runs: list[Exposure] = []  # the run that started each cell
    marks_in_cell: list[list[int]] = []  # 0-based frames of in-between marks inside each cell
    reverse: list[int] = []
    for run in runs:
        if run.kind in ("inbetween", "reverse") and cells:
            cells[-1].length += run.length  # the drawing before holds until the in-between is drawn
            (marks_in_cell[-1] if run.kind == "inbetween" else reverse).append(run.start)
            continue
        if run.kind == "drawing":
            drawing_id, why = index.find(run.name, track.name)
            if drawing_id is None:
                frames, _ = plan.unmatched.setdefault(run.name, ([], why))
                frames.append(run.start + 1)
                drawing_id = blank_drawing(run.name)
            else:
                plan.matched[run.name] = drawing_id
                if run.key or not sheet_keys:
                    plan.keys.add(drawing_id)
        else:  # empty, or a mark with nothing before it
            if run.kind != "empty":
                plan.notes.append(f"A {'reverse-sheet' if run.kind == 'reverse' else 'in-between'} mark on frame "
                                  f"{run.start + 1} has no drawing before it; that frame shows blank.")
            plan.empties += run.length
            drawing_id = blank_drawing("")
        cells.append(Cell(drawing_id, run.length))
        cell_runs.append(run)
        marks_in_cell.append([])
    for cell in cells:
        if cell.length > MAX_EXPOSURE:
            raise InputError(f"The sheet holds one cell for {cell.length:,} frames, above the limit of "
                             f"{MAX_EXPOSURE:,}.")
    plan.cells = cells
    plan.holds = sum(1 for c in cells if c.length > 1)

    # in-between marks -> the positions of each key pair; a pair without usable marks gets none
    starts = []
    frame = 0
    for cell in cells:
        starts.append(frame)
        frame += cell.length
    key_cells = [i for i, c in enumerate(cells) if c.drawing_id in plan.keys]
    for a, b in zip(key_cells, key_cells[1:]):
        key = (cells[a].drawing_id, cells[b].drawing_id)
        between = range(a + 1, b)
        if any(is_blank_id(cells[j].drawing_id, blanks) for j in between):
            offsets: list[int] = []
        else:
            offsets = [f - starts[a] for j in range(a, b) for f in marks_in_cell[j]]
        if key in plan.offsets and plan.offsets[key] != offsets:
            plan.notes.append(f"The keys {key[0]} and {key[1]} follow each other more than once with different "
                              "marks; the first pair's marks are used for both.")
            continue
        plan.offsets[key] = offsets
        plan.marks += [starts[a] + o + 1 for o in offsets]
    plan.marks.sort()
    used = set(plan.marks)
    unusable = [f + 1 for frames_in in marks_in_cell for f in frames_in if f + 1 not in used]
    if unusable:
        plan.notes.append(f"In-between marks on frames {_frame_list(unusable)} have no key on both sides; "
                          "nothing is generated there.")
    if reverse:
        plan.notes.append(f"Reverse-sheet marks on frames {_frame_list([f + 1 for f in reverse])} are kept on "
                          "the sheet; those frames hold the drawing before them (reusing in-betweens in reverse "
                          "is not automated).")
    plan.other_tracks = [t.name for t in sheet.cell_tracks if t is not track]
    for other in sheet.other_tracks:
        what = FIELD_NAMES.get(other.field_id, f"field {other.field_id}")
        shown = ", ".join(f"{e.frame + 1}: {_shown(e.values)}" for e in other.entries[:6])
        more = f" and {len(other.entries) - 6} more" if len(other.entries) > 6 else ""
        plan.notes.append(f"{what.capitalize()} '{other.name}' (read-only, kept): {shown or 'no entries'}{more}.")
    plan.notes += list(sheet.notes)
    if plan.fps is None:
        plan.notes.append(f"The sheet has no frame rate; the shot keeps {shot.fps:g} fps unless one is set.")
    return plan


def _shown(values: tuple[str, ...]) -> str:
    """A field entry as a sheet prints it: symbols as their marks."""
    return " ".join(_GLYPHS.get(v, v) for v in values)


_GLYPHS = {SYMBOL_NULL_CELL: "×", SYMBOL_HYPHEN: "|", SYMBOL_TICK_1: "○", SYMBOL_TICK_2: "●"}


def is_blank_id(drawing_id: str, blanks: dict[str, str]) -> bool:
    return drawing_id in blanks.values()


def import_timing(project, sheet: Sheet, track_name: str | None = None, fps: float | None = None) -> TimingPlan:
    """Plan and apply (one undoable command on the project's stack); returns the plan for its report."""
    plan = plan_import(project.shot, sheet, track_name, fps)
    project.push(plan.command())
    return plan


# --------------------------------------------------------------------------- export


def shot_sheet(shot: Shot) -> Sheet:
    """The shot's timing as a sheet: its cells as the cell track (the imported track's name and place),
    marks where each key pair's in-betweens go, and everything else the imported sheet had."""
    imported = shot.sheet
    duration = shot.frame_count
    runs: list[Exposure] = []
    frame = 0
    sheet_keys = imported is not None and any(e.is_key for t in imported.cell_tracks if t.name == shot.sheet_track
                                              for e in t.entries)
    for cell in shot.cells:
        drawing = shot.drawings[cell.drawing_id]
        if is_blank(shot, drawing.id) and not drawing.label:
            runs.append(Exposure(frame, cell.length, "empty"))
        else:
            name = drawing.label or _file_stem(shot, drawing) or f"{drawing.source_frame + 1:04d}"
            runs.append(Exposure(frame, cell.length, "drawing", name, sheet_keys and drawing.is_key))
        frame += cell.length
    marks: dict[int, str] = {}
    for span in key_spans(shot):
        segment = shot.segments.get(span.key)
        offsets = segment.settings.offsets if segment is not None else None
        if offsets is None and segment is not None and segment.active_take in shot.takes:
            offsets = [f.offset for f in shot.takes[segment.active_take].frames]
        for offset in offsets or []:
            if 0 < offset < span.gap:
                marks[span.start_frame - 1 + offset] = "inbetween"
    number, name = 0, shot.sheet_track or shot.name
    others: list[SheetTrack] = []
    if imported is not None:
        chosen = next((t for t in imported.cell_tracks if t.name == shot.sheet_track), None)
        if chosen is not None:
            number = chosen.number
            for run in exposures(chosen, imported.duration):
                if run.kind == "reverse" and run.start < duration:
                    marks.setdefault(run.start, "reverse")
        others = [t for t in imported.tracks if t is not chosen]
    track = cells_track(number, name, _with_marks(runs, marks), duration)
    tracks = tuple(sorted([track, *others], key=lambda t: (t.field_id, t.number)))
    if imported is not None:
        return Sheet(duration, tracks, imported.name, imported.cut, imported.scene, "xdts")
    return Sheet(duration, tracks, shot.name, source_format="xdts")


def _file_stem(shot: Shot, drawing: Drawing) -> str:
    source = shot.sources.get(drawing.source_id)
    if source is not None and 0 <= drawing.source_frame < len(source.files):
        return PurePath(source.files[drawing.source_frame]).stem
    return ""


def _with_marks(runs: list[Exposure], marks: dict[int, str]) -> list[Exposure]:
    """Split the runs at the marked frames (a mark starts a run of its own kind)."""
    out: list[Exposure] = []
    ordered = sorted(marks)
    for run in runs:
        lo = bisect.bisect_right(ordered, run.start)
        hi = bisect.bisect_left(ordered, run.start + run.length)
        cuts = ordered[lo:hi]
        edges = [run.start, *cuts, run.start + run.length]
        for first, end in zip(edges, edges[1:]):
            if first == run.start:
                out.append(Exposure(first, end - first, run.kind, run.name, run.key))
            else:
                out.append(Exposure(first, end - first, marks[first]))
    return out


__all__ = ["FIELD_CAMERA", "FIELD_CELL", "FIELD_DIALOGUE", "DrawingIndex", "TimingPlan", "import_timing",
           "plan_import", "shot_sheet"]


@dataclass(frozen=True)
class TimelineNotes:
    """What the timeline shows of a sheet, read-only: the marks above the cells (1-based frame ->
    ○ in-between to make, ● reverse sheet) and a row per dialogue / camera-work track."""

    marks: dict[int, str]
    rows: list[tuple[str, dict[int, str]]]  # (title, 1-based frame -> text where an entry starts)


def timeline_notes(shot: Shot | None) -> TimelineNotes:
    if shot is None:
        return TimelineNotes({}, [])
    marks: dict[int, str] = {}
    for span in key_spans(shot):
        segment = shot.segments.get(span.key)
        for offset in (segment.settings.offsets or []) if segment is not None else []:
            if 0 < offset < span.gap:
                marks[span.start_frame + offset] = "○"
    rows: list[tuple[str, dict[int, str]]] = []
    if shot.sheet is not None:
        chosen = next((t for t in shot.sheet.cell_tracks if t.name == shot.sheet_track), None)
        if chosen is not None:
            for run in exposures(chosen, shot.sheet.duration):
                if run.kind == "reverse" and run.start < shot.frame_count:
                    marks.setdefault(run.start + 1, "●")
        for track in shot.sheet.other_tracks:
            title = f"{FIELD_NAMES.get(track.field_id, 'field ' + str(track.field_id)).capitalize()}: {track.name}"
            row = {e.frame + 1: "" if e.value == SYMBOL_NULL_CELL else _shown(e.values)
                   for e in track.entries if e.value != SYMBOL_HYPHEN}  # "": the entry before ends here
            rows.append((title, row))
    return TimelineNotes(marks, rows)
