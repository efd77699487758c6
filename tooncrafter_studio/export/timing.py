"""Timing sheets: a CSV exposure sheet and XDTS (the exchange digital time sheet).

XDTS is what Clip Studio Paint, OpenToonz, Toei's Digital Exposure Sheet and several AE scripts
exchange: a first line `exchangeDigitalTimeSheet Save Data`, then JSON with a header (cut, scene),
and time tables whose fields (0 = cells, 3 = dialogue, 5 = camera work) hold tracks. A track lists
only the frames (0-based) where its value changes, each value a drawing name; readers hold a value
until the next entry, and `SYMBOL_NULL_CELL` means "nothing shown". We write one cell track named
after the sequence, whose values are the exported file numbers, so a tool can match cells to files,
and close it with a null cell at the frame after the last.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from ..project.timing_sheet import SheetTrack

XDTS_IDENTIFIER = "exchangeDigitalTimeSheet Save Data"
XDTS_VERSION = 5
XDTS_FIELD_CELL = 0
SYMBOL_NULL_CELL = "SYMBOL_NULL_CELL"

CSV_COLUMNS = ("frame", "drawing", "file", "label", "kind", "image", "image_id", "image_index", "status", "note")


@dataclass(frozen=True)
class SheetRow:
    """One timeline frame of the exposure sheet."""

    frame: int  # the frame in the export's numbering: the first frame is the preset's first number (Nuke 1001)
    drawing: str  # exported drawing number shown on this frame (the cell value)
    file: str  # file written for this frame (expanded) or the drawing's file (drawings only)
    label: str  # the drawing's name in the project
    kind: str  # key / drawing / inbetween
    image: str  # "source" or "take"
    image_id: str
    image_index: int
    status: str  # review status of an in-between, "" for drawings
    note: str  # e.g. "holds 0009: in-between rejected"


def csv_text(rows: list[SheetRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.frame, row.drawing, row.file, row.label, row.kind, row.image, row.image_id,
                         row.image_index, row.status, row.note])
    return buffer.getvalue()


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise ValueError(f"not an exposure sheet: columns {reader.fieldnames}")
    return list(reader)


def xdts_text(rows: list[SheetRow], track_name: str, cut: str = "1", scene: str = "1",
              extra_fields: list[SheetTrack] | tuple[SheetTrack, ...] = ()) -> str:
    """The sheet as XDTS. Only the documented keys are written (the frame rate is not one of them;
    the CSV and the sidecar carry it), so that strict readers accept the file. `extra_fields`: tracks
    of other fields (dialogue, camera work of an imported sheet) written as they are."""
    duration = len(rows)
    frames: list[dict] = []
    previous = None
    for index, row in enumerate(rows):
        if row.drawing != previous:
            frames.append({"data": [{"id": 0, "values": [row.drawing]}], "frame": index})
            previous = row.drawing
    frames.append({"data": [{"id": 0, "values": [SYMBOL_NULL_CELL]}], "frame": duration})
    headers = [{"fieldId": XDTS_FIELD_CELL, "names": [track_name]}]
    fields = [{"fieldId": XDTS_FIELD_CELL, "tracks": [{"trackNo": 0, "frames": frames}]}]
    for field_id in sorted({t.field_id for t in extra_fields if t.field_id != XDTS_FIELD_CELL}):
        tracks = sorted((t for t in extra_fields if t.field_id == field_id), key=lambda t: t.number)
        names = [""] * (tracks[-1].number + 1)
        for track in tracks:
            names[track.number] = track.name
        headers.append({"fieldId": field_id, "names": names})
        fields.append({"fieldId": field_id, "tracks": [
            {"trackNo": t.number, "frames": [{"data": [{"id": 0, "values": list(e.values)}], "frame": e.frame}
                                             for e in t.entries if e.frame < duration]} for t in tracks]})
    document = {
        "header": {"cut": cut, "scene": scene},
        "timeTables": [{
            "duration": duration,
            "name": track_name,
            "timeTableHeaders": headers,
            "fields": fields,
        }],
        "version": XDTS_VERSION,
    }
    layout = {"indent": 2} if len(frames) <= 5000 else {"separators": (",", ":")}  # large: stay readable by us
    return XDTS_IDENTIFIER + "\n" + json.dumps(document, ensure_ascii=False, **layout) + "\n"


def parse_xdts(text: str) -> dict[str, list[str | None]]:
    """Per cell track name, the drawing shown on each frame (None for an empty cell), read by the full
    reader (sheet_io.py): a value holds until the next entry; marks and hyphens keep the drawing before."""
    from ..project.timing_sheet import exposures
    from .sheet_io import parse_sheet

    sheet = parse_sheet(text, "XDTS text")
    result: dict[str, list[str | None]] = {}
    for track in sheet.cell_tracks:
        shown: list[str | None] = []
        current: str | None = None
        for run in exposures(track, sheet.duration):
            if run.kind == "drawing":
                current = run.name
            elif run.kind == "empty":
                current = None
            shown += [current] * run.length
        result[track.name] = shown
    return result
