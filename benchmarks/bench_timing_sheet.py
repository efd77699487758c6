"""Timing sheets at feature size: read, plan, apply and write back a 100,000-frame XDTS sheet.

One cell track, a new drawing every 4 frames and an in-between mark 2 frames into each (50,000 entries,
2.7 MB) - the size limit of a shot, far past a real cut. Figures are CPU seconds (process time), so a
busy machine does not distort them.
"""

from __future__ import annotations

import json
import time

from tooncrafter_studio.export.sheet_io import parse_sheet, xdts_sheet_text
from tooncrafter_studio.export.sheet_timing import plan_import, shot_sheet
from tooncrafter_studio.project.commands import CommandStack
from tooncrafter_studio.project.document import Cell, Drawing, Shot, Source, SourceKind

FRAMES = 100_000


def _sheet_text() -> str:
    frames = []
    for f in range(0, FRAMES, 4):
        frames.append({"data": [{"id": 0, "values": [str(f // 4 % 3 + 1)]}], "frame": f})
        frames.append({"data": [{"id": 0, "values": ["SYMBOL_TICK_1"]}], "frame": f + 2})
    document = {"timeTables": [{"duration": FRAMES, "timeTableHeaders": [{"fieldId": 0, "names": ["A"]}],
                                "fields": [{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": frames}]}]}],
                "version": 5}
    return "exchangeDigitalTimeSheet Save Data\n" + json.dumps(document, separators=(",", ":"))


def _shot() -> Shot:
    source = Source("s", SourceKind.SEQUENCE, "/keys", ["A_0001.png", "A_0002.png", "A_0003.png"], 1920, 1080,
                    frame_count=3)
    shot = Shot("bench", 24.0, 1920, 1080, sources={"s": source})
    for i in range(3):
        shot.drawings[f"d{i}"] = Drawing(f"d{i}", "s", i)
        shot.cells.append(Cell(f"d{i}"))
    return shot


def run() -> None:
    text = _sheet_text()
    shot = _shot()
    stack = CommandStack(shot)
    steps = []
    clock = time.process_time()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.process_time()
        steps.append((name, now - clock))
        clock = now

    sheet = parse_sheet(text, "bench.xdts")
    lap("read")
    plan = plan_import(shot, sheet)
    lap("plan")
    stack.push(plan.command())
    lap("apply")
    stack.undo()
    lap("undo")
    stack.redo()
    lap("redo")
    back = xdts_sheet_text(shot_sheet(shot))
    lap("export")
    print(f"{FRAMES:,} frames, {len(sheet.cell_track().entries):,} entries ({len(text) / 1e6:.1f} MB); "
          f"{len(plan.cells):,} cells, {plan.inbetweens:,} marked in-between frames; exported {len(back) / 1e6:.1f} MB")
    for name, seconds in steps:
        print(f"  {name:<7} {seconds:6.2f} CPU s")
