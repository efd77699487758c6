"""What the timeline shows at each frame: the cells, with each segment's active take laid over its gap.

This is the single place that answers "which picture is on frame n"; the viewer, the timeline,
export and the timing sheets all read it, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .document import ReviewStatus, Shot, SourceKind


@dataclass(frozen=True)
class ImageRef:
    kind: str  # "source" (a frame of a Source) or "take" (a frame of a Take)
    id: str  # source id or take id
    index: int  # source frame index or take frame index


@dataclass(frozen=True)
class ResolvedFrame:
    frame: int  # 1-based timeline frame
    image: ImageRef
    label: str  # drawing name for the exposure sheet
    kind: str  # "key", "drawing" (a non-key source drawing) or "inbetween"
    new_drawing: bool  # True on the first frame of an exposure
    status: ReviewStatus | None = None  # for in-betweens
    take_id: str | None = None
    note: str = ""  # e.g. "T1-4 rejected: holds T1-3"
    hidden: ImageRef | None = None  # a rejected (or excluded pending) in-between's own drawing, not shown


@dataclass(frozen=True)
class SegmentSpan:
    start_key: str
    end_key: str
    start_frame: int  # 1-based frame where the start key's cell begins
    gap: int  # frames from the start key to the end key

    @property
    def key(self) -> tuple[str, str]:
        return (self.start_key, self.end_key)


def derived_count(gap: int, exposure: int) -> int:
    """In-betweens that fit a gap at an exposure: keys 8 frames apart on 2s -> 3 in-betweens."""
    exposure = max(1, exposure)
    return max(0, -(-gap // exposure) - 1)


def key_spans(shot: Shot) -> list[SegmentSpan]:
    """Consecutive key pairs in timeline order with their frame positions."""
    keys: list[tuple[int, str]] = []
    frame = 1
    for cell in shot.cells:
        drawing = shot.drawings.get(cell.drawing_id)
        if drawing is not None and drawing.is_key:
            keys.append((frame, cell.drawing_id))
        frame += cell.length
    return [SegmentSpan(a_id, b_id, a_frame, b_frame - a_frame)
            for (a_frame, a_id), (b_frame, b_id) in zip(keys, keys[1:])]


EMPTY_LABEL = "×"  # an empty cell of a timing sheet, as sheets draw it


def is_blank(shot: Shot, drawing_id: str) -> bool:
    """Whether a drawing has no picture: a timing sheet's empty cell, or a name it gave no drawing for."""
    drawing = shot.drawings.get(drawing_id)
    source = shot.sources.get(drawing.source_id) if drawing is not None else None
    return source is not None and source.kind == SourceKind.BLANK


def _drawing_label(shot: Shot, drawing_id: str) -> str:
    drawing = shot.drawings[drawing_id]
    if not drawing.label and is_blank(shot, drawing_id):
        return EMPTY_LABEL
    return drawing.label or f"{drawing.source_frame + 1:04d}"


def resolve_timeline(shot: Shot, include_pending: bool = True) -> list[ResolvedFrame]:
    """One ResolvedFrame per timeline frame.

    Inside a segment with an active take, each take frame is shown from its offset until the next
    one; a rejected frame (and a pending one when `include_pending` is False) keeps its own label,
    status and drawing (`hidden`, viewable on demand) but shows the previous picture held, with a
    note that says so.
    """
    frames: list[ResolvedFrame] = []
    for cell in shot.cells:
        drawing = shot.drawings[cell.drawing_id]
        image = ImageRef("source", drawing.source_id, drawing.source_frame)
        kind = "key" if drawing.is_key else "drawing"
        for i in range(cell.length):
            frames.append(ResolvedFrame(len(frames) + 1, image, _drawing_label(shot, drawing.id), kind, i == 0))

    for span in key_spans(shot):
        segment = shot.segments.get(span.key)
        if segment is None or segment.active_take is None or segment.active_take not in shot.takes:
            continue
        take = shot.takes[segment.active_take]
        start_index = span.start_frame - 1
        shown = current = frames[start_index]  # the start key: the picture on screen, the frame held
        take_by_offset = {tf.offset: (i, tf) for i, tf in enumerate(take.frames) if 0 < tf.offset < span.gap}
        for offset in range(1, span.gap):
            slot = start_index + offset
            if offset not in take_by_offset:  # a hold of the frame before (a drawing on 2s, 3s...)
                frames[slot] = replace(current, frame=slot + 1, new_drawing=False)
                continue
            index, tf = take_by_offset[offset]
            label = f"{take.label or take.id[:6]}-{index + 1}"
            own = ImageRef("take", take.id, index)
            if tf.status == ReviewStatus.ACCEPTED or (tf.status == ReviewStatus.PENDING and include_pending):
                shown = current = ResolvedFrame(slot + 1, own, label, "inbetween", True, tf.status, take.id)
            else:
                reason = "rejected" if tf.status == ReviewStatus.REJECTED else "pending, not included"
                current = ResolvedFrame(slot + 1, shown.image, label, "inbetween", False, tf.status, take.id,
                                        f"{label} {reason}: holds {shown.label}", hidden=own)
            frames[slot] = current
    return frames


def cell_starts(shot: Shot) -> list[int]:
    """The 1-based timeline frame where each cell begins."""
    starts: list[int] = []
    frame = 1
    for cell in shot.cells:
        starts.append(frame)
        frame += cell.length
    return starts


def cell_at(shot: Shot, frame: int) -> tuple[int, int]:
    """(index of the cell that shows timeline `frame`, the frame where that cell begins).

    Raises IndexError for a frame outside 1..frame_count; callers turn it into a message.
    """
    if frame < 1:
        raise IndexError(frame)
    start = 1
    for index, cell in enumerate(shot.cells):
        if frame < start + cell.length:
            return index, start
        start += cell.length
    raise IndexError(frame)


def span_containing(shot: Shot, frame: int, spans: list[SegmentSpan] | None = None) -> SegmentSpan | None:
    """The segment whose keys bound `frame` (start key's cell included, end key excluded).

    Pass `spans` (key_spans of the same shot) when the caller already has them cached."""
    for span in key_spans(shot) if spans is None else spans:
        if span.start_frame <= frame < span.start_frame + span.gap:
            return span
    return None


def take_frame_at(shot: Shot, span: SegmentSpan | None, frame: int) -> tuple[str, int] | None:
    """(take id, index in the take) of the active take's frame that owns timeline `frame`.

    A take frame owns its offset and the frames it holds until the next take frame.
    """
    if span is None:
        return None
    segment = shot.segments.get(span.key)
    if segment is None or segment.active_take is None or segment.active_take not in shot.takes:
        return None
    offset = frame - span.start_frame
    if offset <= 0:
        return None
    take = shot.takes[segment.active_take]
    best: tuple[int, int] | None = None  # (offset, index)
    for index, take_frame in enumerate(take.frames):
        if take_frame.offset <= offset and (best is None or take_frame.offset > best[0]):
            best = (take_frame.offset, index)
    return (take.id, best[1]) if best is not None else None
