"""Shots built in memory for the Qt tests (a module with a unique name, importable from any test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tooncrafter_studio.media import write_png
from tooncrafter_studio.project.document import Cell, Drawing, Shot, Source, SourceKind

# How long a Qt test waits for the state it asserts before failing. A ceiling, never a delay: the
# wait ends the moment the state holds, so a generous figure costs a quick machine nothing and keeps
# a loaded CI machine from failing a test that is only slow.
PATIENCE_MS = 120_000  # as waiting.PATIENCE_S (this module is also imported by subprocesses)


def draw_frame(index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """A white frame with a dark disc that moves right as `index` grows."""
    image = np.full((height, width, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = 12 + index * 6, height // 2
    image[(xx - cx) ** 2 + (yy - cy) ** 2 <= 64] = (30, 30, 40)
    return image


def make_shot(folder: Path, drawings: int = 9, lengths: list[int] | None = None, keys=(0, 4, 8)) -> Shot:
    """A shot of `drawings` PNG drawings in folder/src, exposures `lengths`, keys at drawing indices."""
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(drawings):
        name = f"frame.{i + 1:04d}.png"
        write_png(src / name, draw_frame(i))
        files.append(name)
    source = Source("s1", SourceKind.SEQUENCE, "src", files, 96, 64, 24.0, drawings)
    shot = Shot("test", 24.0, 96, 64, sources={"s1": source})
    lengths = lengths or [1] * drawings
    for i in range(drawings):
        shot.drawings[f"d{i}"] = Drawing(f"d{i}", "s1", i, is_key=i in keys)
        shot.cells.append(Cell(f"d{i}", lengths[i]))
    return shot


def as_if_probed(qtbot, window, **probes) -> None:
    """Wait for the window's own engine probes, then show these answers (ProbeResults by engine id)
    instead: the inspector as on a machine with that hardware."""
    from tooncrafter_studio.engines.registry import engine_ids, engine_info

    qtbot.waitUntil(lambda: set(engine_ids()) <= set(window.generation.probes), timeout=PATIENCE_MS)
    window.inspector.set_engines(engine_ids(), {**window.generation.probes, **probes},
                                 {e: engine_info(e).capabilities for e in engine_ids()})
