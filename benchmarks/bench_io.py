"""Import and export of a long 1080p PNG sequence.

Generates FRAMES 1920x1080 PNGs in a temporary folder (flat colours and a moving shape, fast
compression, on threads), then prints:
- time to a usable document: import (header checks only, no decode) + the shot built from it,
  and the same with the project saved to disk; compared with decoding every frame (extrapolated
  from a sample), which a non-lazy import would have to do;
- export throughput in frames/s for 1, 2 and 4 threads (OpenToonz naming, CSV + XDTS + sidecar,
  fsync on): re-encoding every frame (what in-betweens take), and copying source PNGs that are
  already in the output's layout.
Everything is removed afterwards.

Environment: BENCH_IO_FRAMES (default 2000), BENCH_IO_EXPORT_FRAMES (the first frames of the shot
exported per run; default 500, so the bench stays a few minutes on 2 cores), BENCH_IO_WORKERS
(default "1,2,4"), BENCH_IO_DIR (parent of the temp folder).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tooncrafter_studio.export import ExportOptions, export_sequence
from tooncrafter_studio.media import import_source, read_frame
from tooncrafter_studio.media.imageio import encode_png
from tooncrafter_studio.project.document import Cell, Drawing, Shot

WIDTH, HEIGHT = 1920, 1080


def _frame(index: int, background: np.ndarray) -> np.ndarray:
    frame = background.copy()
    x = 100 + (index * 7) % (WIDTH - 400)
    y = 300 + int(200 * np.sin(index / 15))
    frame[y:y + 240, x:x + 240] = (230, 70, 60)
    frame[y + 60:y + 90, x + 40:x + 200] = (255, 230, 120)
    return frame


def generate(folder: Path, count: int, workers: int) -> float:
    background = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    background[:] = (150, 205, 240)
    background[800:] = (95, 165, 90)

    def write(index: int) -> int:
        data = encode_png(_frame(index, background), compression=1)
        (folder / f"plate.{index + 1:04d}.png").write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(write, range(count)))
    return sum(sizes) / len(sizes)


def shot_of(source, frames: int | None = None) -> Shot:
    shot = Shot(name="plate", fps=source.fps, width=source.width, height=source.height,
                has_alpha=source.has_alpha, bit_depth=source.bit_depth)
    shot.sources[source.id] = source
    for i in range(frames or source.frame_count):
        drawing = Drawing(f"d{i + 1:05d}", source.id, i, is_key=(i % 8 == 0))
        shot.drawings[drawing.id] = drawing
        shot.cells.append(Cell(drawing.id, 1))
    return shot


def _export(root: Path, shot: Shot, workers: int, copy_unchanged: bool) -> float:
    out = root / f"export_{workers}_{copy_unchanged}"
    start = time.perf_counter()
    report = export_sequence(root, shot, ExportOptions(out, workers=workers, copy_unchanged=copy_unchanged))
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return len(report.files) / seconds


def run() -> None:
    count = int(os.environ.get("BENCH_IO_FRAMES", "2000"))
    export_count = min(count, int(os.environ.get("BENCH_IO_EXPORT_FRAMES", "500")))
    worker_counts = [int(w) for w in os.environ.get("BENCH_IO_WORKERS", "1,2,4").split(",")]
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="bench_io_", dir=os.environ.get("BENCH_IO_DIR")))
    try:
        frames_dir = root / "frames"
        frames_dir.mkdir()
        start = time.perf_counter()
        mean_size = generate(frames_dir, count, max(2, cores))
        print(f"generated {count} frames {WIDTH}x{HEIGHT} ({mean_size / 1024:.0f} KiB each) in "
              f"{time.perf_counter() - start:.1f} s on {cores} cores")

        start = time.perf_counter()
        result = import_source(frames_dir)
        shot = shot_of(result.source)
        usable = time.perf_counter() - start
        print(f"time to a usable document (import, header checks only, + shot of {shot.frame_count} frames): "
              f"{usable * 1000:.0f} ms ({usable / count * 1e6:.0f} us/frame)")

        try:
            from tooncrafter_studio.project.project import new_project
        except ImportError:
            new_project = None
        if new_project is not None:
            start = time.perf_counter()
            result = import_source(frames_dir)
            new_project(root / "project", result.source, None, 24.0, name="plate")
            saved = time.perf_counter() - start
            print(f"time to a saved project (import + new_project + project.json): {saved * 1000:.0f} ms")

        sample = min(40, count)
        start = time.perf_counter()
        for i in range(sample):
            read_frame(result.source, i * count // sample)
        decode_all = (time.perf_counter() - start) / sample * count
        print(f"decoding every frame instead (extrapolated from {sample}): {decode_all:.1f} s; "
              f"lazy import is {decode_all / usable:.0f}x faster")

        export_shot = shot_of(result.source, export_count)
        # Re-encoding is what in-betweens (and converted sources) go through: decode, conform, encode.
        baseline = None
        for workers in worker_counts:
            fps = _export(root, export_shot, workers, copy_unchanged=False)
            baseline = baseline or fps
            print(f"export {export_count} frames re-encoded, {workers} worker(s): {fps:.1f} frames/s "
                  f"({fps / baseline:.2f}x of {worker_counts[0]})")
        # Source PNGs already in the output layout are copied byte for byte.
        for workers in worker_counts[:1] + worker_counts[-1:]:
            fps = _export(root, export_shot, workers, copy_unchanged=True)
            print(f"export {export_count} frames copied (unchanged source PNGs), {workers} worker(s): "
                  f"{fps:.1f} frames/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run()
