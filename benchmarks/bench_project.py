"""The document at production size: save, open, autosave, resolve and undo on a 2,000-frame shot.

A 2,000-frame shot with 250 keys and a 7-frame take on every segment (1,743 take frames): how long
saving (atomic, fsync'd), opening (parse + migrate + checks), an autosave and resolving the
timeline take, and how fast the command stack does and undoes edits. No pixels are involved.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tooncrafter_studio.project.commands import AddTake, SetExposure, SetFrameStatus
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
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans, resolve_timeline

FRAMES = 2000
KEY_EVERY = 8


def _shot() -> Shot:
    source = Source("src-1", SourceKind.SEQUENCE, "/footage/shot", [f"shot.{i + 1:04d}.png" for i in range(FRAMES)],
                    1920, 1080, frame_count=FRAMES)
    shot = Shot("bench", 24.0, 1920, 1080, sources={source.id: source})
    for i in range(FRAMES):
        drawing = Drawing(f"d{i + 1:04d}", source.id, i, is_key=i % KEY_EVERY == 0)
        shot.drawings[drawing.id] = drawing
        shot.cells.append(Cell(drawing.id))
    return shot


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench", _shot())
        spans = key_spans(project.shot)
        start = time.perf_counter()
        with project.stack.macro("takes"):
            for n, span in enumerate(spans):
                frames = [TakeFrame(f"takes/t{n:05d}/{i:04d}.png", i, i / span.gap, ReviewStatus.PENDING)
                          for i in range(1, span.gap)]
                project.push(AddTake(Take(f"t{n:05d}", span.start_key, span.end_key, frames, {"engine": "flow"},
                                          {"times": [f.time for f in frames]}, n, "2026-01-01T00:00:00+00:00")))
        add_s = time.perf_counter() - start
        take_frames = sum(len(t.frames) for t in project.shot.takes.values())
        print(f"shot: {FRAMES} frames, {len(spans)} segments, {len(project.shot.takes)} takes, "
              f"{take_frames} take frames; adding the takes: {add_s * 1000:.1f} ms")

        save_s = _timed(project.save)
        size = project.project_file.stat().st_size
        open_s = _timed(lambda: Project.open(project.folder))
        project.push(SetExposure([5], 3))
        autosave_s = _timed(lambda: project.autosave(force=True))
        resolve_s = _timed(lambda: resolve_timeline(project.shot))
        print(f"save (atomic, fsync): {save_s * 1000:.1f} ms for {size / 1e6:.2f} MB project.json")
        print(f"open (parse, migrate, check): {open_s * 1000:.1f} ms")
        print(f"autosave: {autosave_s * 1000:.1f} ms")
        print(f"resolve_timeline: {resolve_s * 1000:.1f} ms ({FRAMES / resolve_s:,.0f} frames/s)")

        n = 2000
        take_id = next(iter(project.shot.takes))
        start = time.perf_counter()
        for i in range(n):
            project.push(SetFrameStatus(take_id, [i % 3], ReviewStatus.ACCEPTED if i % 2 else ReviewStatus.REJECTED))
        do_s = time.perf_counter() - start
        start = time.perf_counter()
        while project.stack.can_undo:
            project.undo()
        undo_s = time.perf_counter() - start
        print(f"command stack: {n / do_s:,.0f} review commands/s pushed, "
              f"{(n + 2) / undo_s:,.0f} undos/s (incl. the {len(spans)}-take macro)")


if __name__ == "__main__":
    run()
