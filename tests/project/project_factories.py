"""Shots built in memory for the document tests."""

from __future__ import annotations

from tooncrafter_studio.project.document import (
    Cell,
    Drawing,
    ReviewStatus,
    Shot,
    Source,
    SourceKind,
    Take,
    TakeFrame,
)


def make_shot(lengths: list[int], keys: tuple[int, ...] = (), folder: str = "/footage/walk") -> Shot:
    """One drawing per cell (source frame i for cell i) with the given exposures; `keys` are cell indices."""
    count = len(lengths)
    source = Source(id="src-1", kind=SourceKind.SEQUENCE, path=folder,
                    files=[f"walk.{i + 1:04d}.png" for i in range(count)], width=64, height=48,
                    frame_count=count)
    shot = Shot(name="walk", fps=24.0, width=64, height=48, sources={source.id: source})
    for i, length in enumerate(lengths):
        drawing = Drawing(f"d{i + 1:04d}", source.id, i, is_key=i in keys)
        shot.drawings[drawing.id] = drawing
        shot.cells.append(Cell(drawing.id, length))
    return shot


def make_take(take_id: str, start: str, end: str, offsets: list[int],
              statuses: list[ReviewStatus] | None = None, label: str = "") -> Take:
    statuses = statuses or [ReviewStatus.PENDING] * len(offsets)
    n = len(offsets)
    frames = [TakeFrame(f"takes/{take_id}/{i + 1:04d}.png", off, (i + 1) / (n + 1), st)
              for i, (off, st) in enumerate(zip(offsets, statuses))]
    return Take(take_id, start, end, frames, {"engine": "test"}, {"times": [f.time for f in frames]}, 7,
                "2026-01-01T00:00:00+00:00", label)
