"""Reading timing sheets (XDTS and CSV) into a `Sheet`, and writing a `Sheet` back as XDTS.

XDTS (Clip Studio Paint, OpenToonz, Toei's Digital Exposure Sheet, TVPaint): a first line
`exchangeDigitalTimeSheet Save Data`, then JSON. Of `timeTables` the first is read (the others are
named in the sheet's notes); a table has a `duration`, `timeTableHeaders` (per field id, the track
names, indexed by track number) and `fields` (per field id, `tracks` of `frames`, each frame
`{"frame": n, "data": [{"id": 0, "values": [...], "options": [...]}]}`). Clip Studio writes frames
before 0; OpenToonz writes a closing null cell at the duration. No frame rate.

CSV, chosen by the header:
- our own exposure sheet (export/timing.py's columns): one track; in-between rows become marks,
  key rows keys;
- a `Frame` column and one column per layer (After Effects exposure-sheet scripts and spreadsheets):
  a row per frame; an empty cell carries on, `x`/`×` is an empty cell, `○`/`●` the marks; a column
  called Dialogue or Camera is that field;
- TVPaint's layer-structure CSV (also written by Krita): a `#Layers` row names the layers, `#<number>`
  rows are the frames and repeat the image name on every frame it is shown; an empty cell is an
  empty frame; the header's `Frame Rate` is the shot's.

Every size is checked before it is used (MAX_SHEET_* in project/timing_sheet.py); anything wrong is
an InputError of one line that names the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path

from ..core.errors import InputError
from ..core.fsio import read_regular_file
from ..core.limits import MAX_SHOT_FRAMES
from ..project.timing_sheet import (
    FIELD_CAMERA,
    FIELD_CELL,
    FIELD_DIALOGUE,
    MAX_SHEET_DEPTH,
    MAX_SHEET_ENTRIES,
    MAX_SHEET_FILE_BYTES,
    MAX_SHEET_TEXT,
    MAX_SHEET_TRACKS,
    MAX_SHEET_VALUES,
    OPTION_KEYFRAME,
    SYMBOL_HYPHEN,
    SYMBOL_NULL_CELL,
    SYMBOL_TICK_1,
    SYMBOL_TICK_2,
    Sheet,
    SheetEntry,
    SheetTrack,
    normalize_cells,
)
from .timing import CSV_COLUMNS, XDTS_IDENTIFIER, XDTS_VERSION


class _Bad(Exception):
    """A problem inside the sheet; becomes an InputError naming the file."""


def read_sheet(path: str | os.PathLike) -> Sheet:
    """Read an XDTS or CSV timing sheet from disk (at most MAX_SHEET_FILE_BYTES)."""
    path = Path(path)
    raw = read_regular_file(path, MAX_SHEET_FILE_BYTES, InputError, "timing sheet")
    return parse_sheet(raw, path.name, path.stem)


def parse_sheet(raw: bytes | str, source_name: str = "timing sheet", default_track: str = "A") -> Sheet:
    """An XDTS or CSV sheet from its bytes; the format is chosen by the content, not the name."""
    if len(raw) > MAX_SHEET_FILE_BYTES:
        raise InputError(f"{source_name} is too large for a timing sheet (over {MAX_SHEET_FILE_BYTES >> 20} MiB).")
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    except UnicodeDecodeError:
        raise InputError(f"{source_name} is not a text file (not UTF-8); it is not a timing sheet.") from None
    try:
        if text.startswith(XDTS_IDENTIFIER):
            return _parse_xdts(text[len(XDTS_IDENTIFIER):], default_track)
        if source_name.lower().endswith(".xdts"):
            raise _Bad(f"its first line is not '{XDTS_IDENTIFIER}', so it is not an XDTS file")
        return _parse_csv(text, default_track)
    except _Bad as exc:
        raise InputError(_one_line(f"{source_name}: {exc}.")) from None
    except RecursionError:
        raise InputError(f"{source_name}: nested too deeply to be a timing sheet.") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


# --------------------------------------------------------------------------- XDTS


def _depth_exceeds(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _obj(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{where} should be an object, not {_short(value)}")
    return value


def _list(value: object, where: str, limit: int) -> list:
    if not isinstance(value, list):
        raise _Bad(f"{where} should be a list, not {_short(value)}")
    if len(value) > limit:
        raise _Bad(f"{where} has {len(value):,} items, above the limit of {limit:,}")
    return value


def _whole(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(f"{where} should be a whole number from {low:,} to {high:,}, not {_short(value)}")
    return value


def _text(value: object, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a drawing number written as a number
    if not isinstance(value, str):
        raise _Bad(f"{where} should be text, not {_short(value)}")
    if len(value) > MAX_SHEET_TEXT:
        raise _Bad(f"{where} is {len(value):,} characters long, above the limit of {MAX_SHEET_TEXT:,}")
    return value


def _parse_xdts(body: str, default_track: str) -> Sheet:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _Bad(f"damaged XDTS: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise _Bad(f"damaged XDTS ({str(exc)[:80]})") from None
    if _depth_exceeds(document, MAX_SHEET_DEPTH):
        raise _Bad(f"its JSON is nested more than {MAX_SHEET_DEPTH} levels deep")
    document = _obj(document, "the XDTS document")
    tables = _list(document.get("timeTables"), "timeTables", 1000)
    if not tables:
        raise _Bad("it has no time table")
    notes = []
    if len(tables) > 1:
        notes.append(f"the sheet has {len(tables)} time tables; only the first was read")
    table = _obj(tables[0], "timeTables[0]")
    duration = _whole(table.get("duration"), "timeTables[0].duration", 1, MAX_SHOT_FRAMES)
    header = document.get("header", {})
    header = header if isinstance(header, dict) else {}
    names: dict[int, list[str]] = {}
    for i, item in enumerate(_list(table.get("timeTableHeaders", []), "timeTableHeaders", 100)):
        item = _obj(item, f"timeTableHeaders[{i}]")
        field_id = _whole(item.get("fieldId"), f"timeTableHeaders[{i}].fieldId", 0, 1000)
        names[field_id] = [_text(n, f"timeTableHeaders[{i}].names") for n in
                           _list(item.get("names", []), f"timeTableHeaders[{i}].names", MAX_SHEET_TRACKS)]
    tracks: list[SheetTrack] = []
    total = 0
    for i, item in enumerate(_list(table.get("fields", []), "fields", 100)):
        item = _obj(item, f"fields[{i}]")
        field_id = _whole(item.get("fieldId"), f"fields[{i}].fieldId", 0, 1000)
        for j, raw_track in enumerate(_list(item.get("tracks", []), f"fields[{i}].tracks", MAX_SHEET_TRACKS)):
            where = f"fields[{i}].tracks[{j}]"
            raw_track = _obj(raw_track, where)
            number = _whole(raw_track.get("trackNo"), f"{where}.trackNo", 0, MAX_SHEET_TRACKS)
            frames = _list(raw_track.get("frames", []), f"{where}.frames", MAX_SHEET_ENTRIES)
            total += len(frames)
            if total > MAX_SHEET_ENTRIES:
                raise _Bad(f"it has more than {MAX_SHEET_ENTRIES:,} entries")
            entries = [_xdts_entry(frame, f"{where}.frames[{k}]") for k, frame in enumerate(frames)]
            entries = [e for e in entries if e is not None]
            field_names = names.get(field_id, [])
            name = field_names[number] if number < len(field_names) else ""
            if not name:
                name = default_track if field_id == FIELD_CELL and number == 0 else f"Track {number + 1}"
            if field_id == FIELD_CELL:
                entries = list(normalize_cells(entries, duration))
            else:
                entries = sorted((e for e in entries if 0 <= e.frame < duration), key=lambda e: e.frame)
            tracks.append(SheetTrack(field_id, number, name, tuple(entries)))
    if len(tracks) > MAX_SHEET_TRACKS:
        raise _Bad(f"it has {len(tracks):,} tracks, above the limit of {MAX_SHEET_TRACKS:,}")
    tracks = _unique_names(tracks, notes)
    unknown = sorted({t.field_id for t in tracks} - {FIELD_CELL, FIELD_DIALOGUE, FIELD_CAMERA})
    if unknown:
        notes.append(f"fields {', '.join(map(str, unknown))} are of a kind this app does not show; they are kept")
    return Sheet(duration, tuple(tracks), _text(table.get("name", ""), "timeTables[0].name"),
                 _text(header.get("cut", ""), "header.cut"), _text(header.get("scene", ""), "header.scene"),
                 "xdts", None, tuple(notes))


def _unique_names(tracks: list[SheetTrack], notes: list[str]) -> list[SheetTrack]:
    """Two cell tracks with one name could not be told apart (--track NAME): the later ones get a number."""
    seen: set[str] = set()
    out = []
    for track in tracks:
        name = track.name
        if track.field_id == FIELD_CELL:
            n = 1
            while name in seen:
                n += 1
                name = f"{track.name} ({n})"
            if name != track.name:
                notes.append(f"two cell tracks are called '{track.name}'; the later one is '{name}' here")
            seen.add(name)
        out.append(SheetTrack(track.field_id, track.number, name, track.entries))
    return out


def _xdts_entry(raw: object, where: str) -> SheetEntry | None:
    raw = _obj(raw, where)
    frame = _whole(raw.get("frame"), f"{where}.frame", -MAX_SHOT_FRAMES, MAX_SHOT_FRAMES)
    data = _list(raw.get("data", []), f"{where}.data", MAX_SHEET_VALUES)
    if not data:
        return None
    item = _obj(data[0], f"{where}.data[0]")
    values = tuple(_text(v, f"{where}.data[0].values") for v in
                   _list(item.get("values", []), f"{where}.data[0].values", MAX_SHEET_VALUES))
    options = tuple(_text(v, f"{where}.data[0].options") for v in
                    _list(item.get("options", []), f"{where}.data[0].options", MAX_SHEET_VALUES))
    return SheetEntry(frame, values, options) if values else None


def xdts_sheet_text(sheet: Sheet) -> str:
    """A sheet as XDTS: every track, marks and key options included; cell tracks closed with a null
    cell at the duration (as OpenToonz writes them)."""
    by_field: dict[int, list[SheetTrack]] = {}
    for track in sheet.tracks:
        by_field.setdefault(track.field_id, []).append(track)
    headers, fields = [], []
    for field_id in sorted(by_field):
        tracks = sorted(by_field[field_id], key=lambda t: t.number)
        names = [""] * (max(t.number for t in tracks) + 1)
        for track in tracks:
            names[track.number] = track.name
        headers.append({"fieldId": field_id, "names": names})
        written = []
        for track in tracks:
            entries = list(normalize_cells(track.entries, sheet.duration) if field_id == FIELD_CELL else track.entries)
            frames = [{"data": [{"id": 0, "values": list(e.values), **({"options": list(e.options)} if e.options
                                                                       else {})}], "frame": e.frame}
                      for e in entries]
            if field_id == FIELD_CELL and entries and entries[-1].value != SYMBOL_NULL_CELL:
                frames.append({"data": [{"id": 0, "values": [SYMBOL_NULL_CELL]}], "frame": sheet.duration})
            written.append({"trackNo": track.number, "frames": frames})
        fields.append({"fieldId": field_id, "tracks": written})
    document = {
        "header": {"cut": sheet.cut or "1", "scene": sheet.scene or "1"},
        "timeTables": [{"duration": sheet.duration, "name": sheet.name or "sheet", "timeTableHeaders": headers,
                        "fields": fields}],
        "version": XDTS_VERSION,
    }
    entries = sum(len(t.entries) for t in sheet.tracks)
    # readable when small; compact when large, so that any sheet we write stays under the size we read
    layout = {"indent": 2} if entries <= 5000 else {"separators": (",", ":")}
    return XDTS_IDENTIFIER + "\n" + json.dumps(document, ensure_ascii=False, **layout) + "\n"


# --------------------------------------------------------------------------- CSV

_EMPTY_MARKS = {"x", "×", "✕", SYMBOL_NULL_CELL.lower()}
_TICK_1_MARKS = {"○", "◯", SYMBOL_TICK_1.lower()}
_TICK_2_MARKS = {"●", SYMBOL_TICK_2.lower()}
_CARRY_ON_MARKS = {"", "|", "｜", "-", "ー", SYMBOL_HYPHEN.lower()}
_DIALOGUE_NAMES = {"dialogue", "dialog", "serif", "セリフ", "台詞"}
_CAMERA_NAMES = {"camera", "camerawork", "camera work", "cam", "カメラ", "カメラワーク"}
_FRAME_NAMES = {"frame", "frames", "frame#", "#", "コマ"}
_TVPAINT_FRAME = re.compile(r"^#?\d{1,9}$")


def _cell_value(text: str) -> str | None:
    """What a layer cell says: a symbol, a drawing name, or None (carry on)."""
    value = text.strip()
    folded = value.casefold()
    if folded in _CARRY_ON_MARKS:
        return None
    if folded in _EMPTY_MARKS:
        return SYMBOL_NULL_CELL
    if folded in _TICK_1_MARKS:
        return SYMBOL_TICK_1
    if folded in _TICK_2_MARKS:
        return SYMBOL_TICK_2
    return value


def _csv_rows(text: str) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), skipinitialspace=True):  # TVPaint writes ', "name"'
            if len(row) > MAX_SHEET_TRACKS + 1:
                raise _Bad(f"a row has {len(row):,} columns, above the limit of {MAX_SHEET_TRACKS + 1:,}")
            if any(len(cell) > MAX_SHEET_TEXT for cell in row):
                raise _Bad(f"a cell is longer than {MAX_SHEET_TEXT:,} characters")
            rows.append(row)
            if len(rows) > MAX_SHOT_FRAMES + 100:
                raise _Bad(f"it has more than {MAX_SHOT_FRAMES:,} rows")
    except csv.Error as exc:
        raise _Bad(f"damaged CSV ({exc})") from None
    if sum(len(r) for r in rows) > MAX_SHEET_ENTRIES * 4:
        raise _Bad("it has too many cells for a timing sheet")
    return rows


def _parse_csv(text: str, default_track: str) -> Sheet:
    rows = [row for row in _csv_rows(text) if any(cell.strip() for cell in row)]
    if not rows:
        raise _Bad("it is empty")
    header = [cell.strip() for cell in rows[0]]
    if tuple(header) == CSV_COLUMNS:
        return _parse_own_csv(rows[1:], default_track)
    if header[0].casefold() in _FRAME_NAMES:
        return _parse_layer_csv(header[1:], [row[1:] for row in rows[1:]], "csv-frame", None)
    for index, row in enumerate(rows[:200]):
        if row and row[0].strip().casefold() == "#layers":
            return _parse_tvpaint(rows, index)
    raise _Bad("not a timing sheet this app reads: a CSV sheet starts with our exposure sheet's columns "
               f"({','.join(CSV_COLUMNS[:3])},...), a Frame column with one column per layer, or TVPaint's "
               "#Layers row")


def _parse_own_csv(rows: list[list[str]], track_name: str) -> Sheet:
    entries: list[SheetEntry] = []
    previous: tuple[str, str] | None = None
    for index, row in enumerate(rows):
        if len(row) < len(CSV_COLUMNS):
            raise _Bad(f"row {index + 2} has {len(row)} columns, not {len(CSV_COLUMNS)}")
        record = dict(zip(CSV_COLUMNS, row))
        # the project's name for the drawing (what the timeline shows), else the exported number
        drawing, kind = record["label"].strip() or record["drawing"].strip(), record["kind"].strip()
        if (drawing, kind) == previous:
            continue
        previous = (drawing, kind)
        if not drawing or drawing == "×":
            entries.append(SheetEntry(index, (SYMBOL_NULL_CELL,)))
        elif kind == "inbetween":
            entries.append(SheetEntry(index, (SYMBOL_TICK_1,)))
        else:
            entries.append(SheetEntry(index, (drawing,), (OPTION_KEYFRAME,) if kind == "key" else ()))
    duration = len(rows)
    if duration < 1:
        raise _Bad("it has no frames")
    return Sheet(duration, (SheetTrack(FIELD_CELL, 0, track_name, normalize_cells(entries, duration)),),
                 track_name, source_format="csv")


def _parse_layer_csv(names: list[str], rows: list[list[str]], source_format: str, fps: float | None,
                     blank_is_empty: bool = False) -> Sheet:
    """blank_is_empty: an empty cell is an empty frame (TVPaint repeats a held name on every frame),
    instead of "carry on" (spreadsheets write a name where it changes)."""
    duration = len(rows)
    if duration < 1:
        raise _Bad("it has no frames")
    if not names:
        raise _Bad("it has no layer columns")
    tracks: list[SheetTrack] = []
    numbers: dict[int, int] = {}
    total = 0
    for column, raw_name in enumerate(names):
        name = raw_name.strip() or f"Track {column + 1}"
        folded = name.casefold()
        field_id = (FIELD_DIALOGUE if folded in _DIALOGUE_NAMES else FIELD_CAMERA if folded in _CAMERA_NAMES
                    else FIELD_CELL)
        entries = []
        for frame, row in enumerate(rows):
            cell = row[column] if column < len(row) else ""
            if field_id != FIELD_CELL:
                if cell.strip():
                    entries.append(SheetEntry(frame, (cell.strip(),)))
                continue
            value = SYMBOL_NULL_CELL if blank_is_empty and not cell.strip() else _cell_value(cell)
            if value is not None:
                entries.append(SheetEntry(frame, (value,)))
        total += len(entries)
        if total > MAX_SHEET_ENTRIES:
            raise _Bad(f"it has more than {MAX_SHEET_ENTRIES:,} entries")
        number = numbers.get(field_id, 0)
        numbers[field_id] = number + 1
        if field_id == FIELD_CELL:
            entries = list(normalize_cells(entries, duration))
        tracks.append(SheetTrack(field_id, number, name, tuple(entries)))
    return Sheet(duration, tuple(tracks), "", source_format=source_format, fps=fps)


def _parse_tvpaint(rows: list[list[str]], layers_row: int) -> Sheet:
    fps = None
    for index, row in enumerate(rows[:layers_row]):
        for column, cell in enumerate(row):
            if cell.strip().casefold() in ("framerate", "frame rate") and index + 1 < len(rows) \
                    and column < len(rows[index + 1]):
                try:
                    value = float(rows[index + 1][column])
                except ValueError:
                    continue
                if math.isfinite(value) and 0.1 <= value <= 1000:
                    fps = value
    names = rows[layers_row][1:]
    frames = [row[1:] for row in rows[layers_row + 1:] if row and _TVPAINT_FRAME.match(row[0].strip())]
    return _parse_layer_csv(names, frames, "csv-tvpaint", fps, blank_is_empty=True)
