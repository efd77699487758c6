"""What the timeline shows at each frame: the cells, with each segment's active take laid over its gap.

This is the single place that answers "which picture is on frame n"; the viewer, the timeline,
export and the timing sheets all read it, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import ReviewStatus, Shot


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
    note: str = ""  # e.g. "holds 0009: in-between rejected"


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


def _drawing_label(shot: Shot, drawing_id: str) -> str:
    drawing = shot.drawings[drawing_id]
    return drawing.label or f"{drawing.source_frame + 1:04d}"


def resolve_timeline(shot: Shot, include_pending: bool = True) -> list[ResolvedFrame]:
    """One ResolvedFrame per timeline frame.

    Inside a segment with an active take, each take frame is shown from its offset until the next
    one; a rejected frame (and a pending one when `include_pending` is False) shows the previous
    picture held, with a note that says so.
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
        shown = frames[start_index]  # the start key
        take_by_offset = {tf.offset: (i, tf) for i, tf in enumerate(take.frames) if 0 < tf.offset < span.gap}
        for offset in range(1, span.gap):
            slot = start_index + offset
            if offset in take_by_offset:
                index, tf = take_by_offset[offset]
                visible = tf.status == ReviewStatus.ACCEPTED or (
                    tf.status == ReviewStatus.PENDING and include_pending)
                if visible:
                    shown = ResolvedFrame(slot + 1, ImageRef("take", take.id, index),
                                          f"{take.label or take.id[:6]}-{index + 1}", "inbetween", True,
                                          tf.status, take.id)
                    frames[slot] = shown
                    continue
                reason = "rejected" if tf.status == ReviewStatus.REJECTED else "pending, not included"
                frames[slot] = ResolvedFrame(slot + 1, shown.image, shown.label, shown.kind, False,
                                             tf.status, take.id, f"holds {shown.label}: in-between {reason}")
                continue
            frames[slot] = ResolvedFrame(slot + 1, shown.image, shown.label, shown.kind, False,
                                         shown.status, shown.take_id, shown.note)
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
