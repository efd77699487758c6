"""The sketch row of the exposure sheet: which timeline frames carry a sketch, and placing a
dropped or imported image on an in-between cell (copied into the project, one undoable command)."""

from __future__ import annotations

from pathlib import Path

from ...core.errors import StudioError
from ...engines.registry import engine_info
from ...media.sketch_files import import_sketch_image
from ...project.commands import segment_settings
from ...project.document import Shot, SketchRef
from ...project.resolve import SegmentSpan
from ...project.sketches import PlaceSketch, RemoveSketch


def sketch_marks(shot: Shot | None, spans: list[SegmentSpan]) -> dict[int, SketchRef]:
    """Timeline frame -> the sketch on that in-between cell."""
    marks: dict[int, SketchRef] = {}
    if shot is None:
        return marks
    for span in spans:
        segment = shot.segments.get(span.key)
        if segment is None:
            continue
        for offset, ref in segment.settings.sketches.items():
            if 0 < offset < span.gap:
                marks[span.start_frame + offset] = ref
    return marks


def span_inside(spans: list[SegmentSpan], frame: int) -> SegmentSpan | None:
    """The segment whose in-between cells include `frame` (strictly between its keys)."""
    return next((s for s in spans if s.start_frame < frame < s.start_frame + s.gap), None)


def place_sketch(session, frame: int, path: str | Path) -> str | None:
    """Put the image at `path` on the in-between cell at `frame`; None, or why not."""
    span = span_inside(session.spans(), frame)
    if span is None or session.project is None:
        return f"Frame {frame} is not an in-between cell: sketches go between two keys."
    try:
        ref = import_sketch_image(session.project.folder, path)
    except StudioError as exc:
        return str(exc)
    session.push(PlaceSketch(span.key, frame - span.start_frame, ref))
    return None


def sketches_ignored(shot: Shot | None, span: SegmentSpan | None) -> str:
    """Why the sketches on this key pair will not steer its in-betweens ('' when they will, or there are
    none): said where the sketch is, not only in the log."""
    if shot is None or span is None:
        return ""
    settings = segment_settings(shot, span.key)
    if not settings.sketches:
        return ""
    engine_id = settings.engine or "flow"
    try:
        info = engine_info(engine_id)
    except StudioError:
        return ""  # an engine that is not installed: the Engine row says so
    if info.accepts_sketches:
        return ""
    return (f"The {info.label} engine ignores sketches: choose ToonCrafter under Engine in the Segment panel "
            "to draw the in-betweens through them.")


SKETCH_TINT = (150, 60, 200)  # violet: neither key's light-table colour
_tinted_cache: dict[str, object] = {}


def sketch_layer(session, frame: int):
    """The viewer layer of the sketch on `frame` (its lines tinted violet, multiplied over the
    frame), or None. Sketch files are small: read on first use and kept."""
    from ...media.imageio import read_image
    from .thumbnails import DisplayImage
    from .viewer import Layer, tinted

    ref = sketch_marks(session.shot, session.spans()).get(frame)
    if ref is None or session.project is None:
        return None
    image = _tinted_cache.get(ref.sha256)
    if image is None:
        try:
            pixels = read_image(session.project.path_of(ref.file))
        except StudioError:
            return None
        if pixels.dtype != "uint8":
            pixels = (pixels // 257).astype("uint8")
        from PySide6.QtGui import QColor

        image = _tinted_cache[ref.sha256] = tinted(DisplayImage.from_array(pixels), QColor(*SKETCH_TINT))
    return Layer(image, 0.85)


def remove_sketch(session, frame: int) -> bool:
    span = span_inside(session.spans(), frame)
    if span is None or frame not in sketch_marks(session.shot, session.spans()):
        return False
    session.push(RemoveSketch(span.key, frame - span.start_frame))
    return True
