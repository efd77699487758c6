"""What the guards of issue 18 cost, and what they save.

- Frame lists: memory and CPU time of refusing `1-1000000000` (the issue saw 1.5 GB allocated before
  the refusal), of refusing thousands of overlapping ranges, and of accepting the largest list a
  shot allows; beside them the allocation the old expand-then-check parser made for a million
  frames (measured on a million, since a billion would exhaust memory).
- Takes that survive a crash: the time the studio spends recording a landed take in project.json
  (read afresh + atomic save, under the write lock, on the UI thread) on the 2,000-frame shot of
  bench_project, and the time finding unlisted take folders adds to opening it.

Memory is tracemalloc's peak (Python allocations); times are CPU seconds (time.process_time), so a
loaded machine distorts them less than wall time would.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.core.frame_ranges import parse_frame_items
from tooncrafter_studio.core.limits import MAX_SHOT_FRAMES


def _peak(fn) -> tuple[int, float]:
    """(tracemalloc peak in bytes, CPU seconds) of fn(); a refusal (InputError) counts as done."""
    tracemalloc.start()
    cpu = time.process_time()
    try:
        fn()
    except InputError:
        pass
    finally:
        cpu = time.process_time() - cpu
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, cpu


def _expand_then_check(text: str, last: int) -> list[tuple[int, bool]]:
    """How review parsed frames before: expand every range, then check the bounds."""
    items: list[tuple[int, bool]] = []
    for part in text.split(","):
        first, _, end = part.partition("-")
        items += [(f, False) for f in range(int(first), int(end or first) + 1)]
    for frame, _alone in items:
        if not 1 <= frame <= last:
            raise InputError(f"Frame {frame} is outside the shot.")
    return items


def _frame_lists() -> None:
    rows = [
        ("refuse 1-1000000000 (shot of 100 frames)", lambda: parse_frame_items("1-1000000000", 100)),
        ("refuse 12,000 x 1-100000 (no shot bound)", lambda: parse_frame_items(",".join(["1-99999"] * 12_000))),
        (f"accept 1-{MAX_SHOT_FRAMES} on a shot of {MAX_SHOT_FRAMES:,}",
         lambda: parse_frame_items(f"1-{MAX_SHOT_FRAMES}", MAX_SHOT_FRAMES)),
        ("old parser: 1-1000000 on a shot of 100 frames", lambda: _expand_then_check("1-1000000", 100)),
    ]
    for label, fn in rows:
        peak, cpu = _peak(fn)
        print(f"  {label:<50} peak {peak / 2**20:8.2f} MiB   {cpu * 1000:8.1f} ms CPU")
    old, _ = _peak(lambda: _expand_then_check("1-1000000", 100))
    new, _ = _peak(lambda: parse_frame_items("1-1000000000", 100))
    print(f"  old parser, extrapolated to 1-1000000000: {old * 1000 / 2**30:.0f} GiB; new refusal: "
          f"{new / 2**10:.1f} KiB (ratio {old * 1000 / max(new, 1):,.0f}x)")


def _takes() -> None:
    from benchmarks.bench_project import _shot
    from tooncrafter_studio.pipeline.shared_project import record_take
    from tooncrafter_studio.project.commands import AddTake
    from tooncrafter_studio.project.document import Take, TakeFrame
    from tooncrafter_studio.project.orphan_takes import find_orphan_takes, write_take_manifest
    from tooncrafter_studio.project.project import Project
    from tooncrafter_studio.project.resolve import key_spans

    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "shot", _shot())
        spans = key_spans(project.shot)
        takes = []
        for n, span in enumerate(spans[:100]):
            take_id = f"t{n:010d}"
            folder = project.folder / "takes" / take_id
            folder.mkdir(parents=True)
            frames = [TakeFrame(f"takes/{take_id}/{i + 1:04d}.png", i + 1, (i + 1) / span.gap)
                      for i in range(span.gap - 1)]
            for frame in frames:
                (project.folder / frame.file).write_bytes(b"png")
            take = Take(take_id, span.start_key, span.end_key, frames, {"engine": "flow"}, {}, 0,
                        f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00")
            write_take_manifest(folder, take)
            takes.append(take)
        cpu = time.process_time()
        found = find_orphan_takes(Project.open(project.folder))
        scan = time.process_time() - cpu
        cpu = time.process_time()
        Project.open(project.folder)
        opening = time.process_time() - cpu
        print(f"  find 100 unlisted take folders at open: {scan * 1000:.0f} ms CPU "
              f"(opening itself: {opening * 1000:.0f} ms); found {len(found)}")
        times = []
        for take in takes[:5]:
            project.push(AddTake(take))
            cpu = time.process_time()
            record_take(project, take, was_clean=False)
            times.append(time.process_time() - cpu)
        print(f"  record a landed take in project.json ({len(project.shot.cells):,} frames, "
              f"{len(project.shot.takes)} takes): {min(times) * 1000:.0f} ms CPU (best of {len(times)}), "
              "on the UI thread")


def run() -> None:
    _frame_lists()
    _takes()


if __name__ == "__main__":
    run()
