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

XDTS_IDENTIFIER = "exchangeDigitalTimeSheet Save Data"
XDTS_VERSION = 5
XDTS_FIELD_CELL = 0
SYMBOL_NULL_CELL = "SYMBOL_NULL_CELL"
SYMBOL_TICK_1 = "SYMBOL_TICK_1"
SYMBOL_TICK_2 = "SYMBOL_TICK_2"
SYMBOL_HYPHEN = "SYMBOL_HYPHEN"
_SYMBOLS = {SYMBOL_NULL_CELL, SYMBOL_TICK_1, SYMBOL_TICK_2, SYMBOL_HYPHEN}

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


def xdts_text(rows: list[SheetRow], track_name: str, cut: str = "1", scene: str = "1") -> str:
    """The sheet as XDTS. Only the documented keys are written (the frame rate is not one of them;
    the CSV and the sidecar carry it), so that strict readers accept the file."""
    duration = len(rows)
    frames: list[dict] = []
    previous = None
    for index, row in enumerate(rows):
        if row.drawing != previous:
            frames.append({"data": [{"id": 0, "values": [row.drawing]}], "frame": index})
            previous = row.drawing
    frames.append({"data": [{"id": 0, "values": [SYMBOL_NULL_CELL]}], "frame": duration})
    document = {
        "header": {"cut": cut, "scene": scene},
        "timeTables": [{
            "duration": duration,
            "name": track_name,
            "timeTableHeaders": [{"fieldId": XDTS_FIELD_CELL, "names": [track_name]}],
            "fields": [{"fieldId": XDTS_FIELD_CELL, "tracks": [{"trackNo": 0, "frames": frames}]}],
        }],
        "version": XDTS_VERSION,
    }
    return XDTS_IDENTIFIER + "\n" + json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def parse_xdts(text: str) -> dict[str, list[str | None]]:
    """Per cell track name, the value shown on each frame (None for an empty cell).

    Follows the readers' rule: a value holds until the next entry; symbols other than the null
    cell (tick marks, hyphen) keep the previous drawing.
    """
    first, _, rest = text.partition("\n")
    if first.strip() != XDTS_IDENTIFIER:
        raise ValueError("not an XDTS file (missing the identifier line)")
    document = json.loads(rest)
    if not isinstance(document.get("version"), int):
        raise ValueError("XDTS without a version")
    result: dict[str, list[str | None]] = {}
    for table in document["timeTables"]:
        duration = int(table["duration"])
        names = next((h["names"] for h in table.get("timeTableHeaders", []) if h["fieldId"] == XDTS_FIELD_CELL), [])
        for field in table.get("fields", []):
            if field["fieldId"] != XDTS_FIELD_CELL:
                continue
            for track in field["tracks"]:
                shown: list[str | None] = [None] * duration
                entries = sorted(track["frames"], key=lambda f: f["frame"])
                current: str | None = None
                for i, entry in enumerate(entries):
                    value = entry["data"][0]["values"][0]
                    if value == SYMBOL_NULL_CELL:
                        current = None
                    elif value not in _SYMBOLS:
                        current = value
                    end = entries[i + 1]["frame"] if i + 1 < len(entries) else duration
                    for f in range(max(0, entry["frame"]), min(end, duration)):
                        shown[f] = current
                result[names[track["trackNo"]]] = shown
    return result
