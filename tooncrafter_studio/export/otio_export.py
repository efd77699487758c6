"""The timed shot as an OpenTimelineIO timeline, for editorial (the `editorial` extra).

One video track: a clip per exposure (a still held for its frames, pointing at the drawing's file or
the in-between's take frame), a gap for each empty cell; markers for the timing sheet's in-between
marks and for its dialogue and camera-work entries. The frame rate is the shot's.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError
from ..project.document import Shot, SourceKind
from ..project.resolve import ImageRef, resolve_timeline
from .sheet_timing import timeline_notes


def _picture_path(shot: Shot, folder: Path, image: ImageRef) -> Path | None:
    if image.kind == "take":
        take = shot.takes.get(image.id)
        if take is None or not 0 <= image.index < len(take.frames):
            return None
        path = Path(take.frames[image.index].file)
    else:
        source = shot.sources.get(image.id)
        if source is None or source.kind == SourceKind.BLANK:
            return None
        base = Path(source.path)
        if source.kind == SourceKind.VIDEO:
            path = base
        elif 0 <= image.index < len(source.files):
            path = base / source.files[image.index]
        else:
            return None
    return path if path.is_absolute() else (folder / path).resolve()


def otio_text(shot: Shot, folder: Path) -> str:
    """The shot as .otio JSON text."""
    try:
        import opentimelineio as otio
    except ImportError:
        raise InputError("OpenTimelineIO export needs the opentimelineio package: "
                         "pip install \"tooncrafter-studio[editorial]\".") from None
    rate = float(shot.fps)
    timeline = otio.schema.Timeline(name=shot.name)
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    track = otio.schema.Track(name=shot.sheet_track or "cells", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    frames = resolve_timeline(shot)
    start = 0
    while start < len(frames):
        end = start + 1
        while end < len(frames) and not frames[end].new_drawing and frames[end].image == frames[start].image:
            end += 1
        first = frames[start]
        duration = otio.opentime.RationalTime(end - start, rate)
        path = _picture_path(shot, folder, first.image)
        if path is None:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), duration)))
        else:
            clip = otio.schema.Clip(name=first.label, source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), duration))
            clip.media_reference = otio.schema.ExternalReference(target_url=path.as_uri())
            clip.metadata["tooncrafter_studio"] = {"frame": first.frame, "kind": first.kind}
            track.append(clip)
        start = end
    notes = timeline_notes(shot)
    for frame, glyph in sorted(notes.marks.items()):
        track.markers.append(otio.schema.Marker(
            name="in-between" if glyph == "○" else "reverse sheet",
            marked_range=otio.opentime.TimeRange(otio.opentime.RationalTime(frame - 1, rate),
                                                 otio.opentime.RationalTime(1, rate))))
    for title, entries in notes.rows:
        for frame, text in sorted(entries.items()):
            marker = otio.schema.Marker(name=text, marked_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(frame - 1, rate), otio.opentime.RationalTime(1, rate)))
            marker.metadata["tooncrafter_studio"] = {"row": title}
            track.markers.append(marker)
    return otio.adapters.write_to_string(timeline, "otio_json")
