"""UI responsiveness of the studio window (offscreen): the longest event-loop stall while
(a) a 2,000-frame 1920x1080 shot scrolls and plays, (b) a generation job runs, (c) thumbnails load;
and playback frames per second at 1080p from the frame cache.

The shot's pixels come from a generator (a background and a moving disc, drawn on demand in the
loaders' threads) so that no 2,000 files need writing; only the two keys of the generated segment
are real PNG files, because the job reads them from disk like any project job.

A heartbeat timer ticks every 2 ms on the UI thread; a stall is the longest gap between two
ticks minus that interval. Goal: no stall over 50 ms.

Environment: BENCH_UI_FRAMES (default 2000), BENCH_UI_SECONDS (per phase, default 4).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 1920, 1080
HEARTBEAT_MS = 2
GOAL_MS = 50.0
KEYS = (0, 4, 8, 12)  # drawings marked as keys: three segments of 3 in-betweens on 2s


class StallMeter:
    """Measures the event loop's longest stall with a fast heartbeat timer."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self.timer.start(HEARTBEAT_MS)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000.0)
        self._last = now

    def stop(self) -> tuple[float, float]:
        self.timer.stop()
        if not self.gaps:
            return 0.0, 0.0
        gaps = np.array(self.gaps) - HEARTBEAT_MS
        return float(max(0.0, gaps.max())), float(max(0.0, np.percentile(gaps, 99)))


def synthetic_frame(index: int, background: np.ndarray) -> np.ndarray:
    frame = background.copy()
    x = 200 + (index * 11) % (WIDTH - 400)
    y = 540 + int(300 * np.sin(index / 9))
    cv2.circle(frame, (x, y), 90, (220, 60, 50), -1)
    cv2.circle(frame, (x, y), 90, (30, 30, 30), 6)
    cv2.putText(frame, f"{index + 1:04d}", (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (20, 20, 20), 6)
    return frame


def build_project(folder: Path, frames: int, background: np.ndarray):
    from tooncrafter_studio.media import write_png
    from tooncrafter_studio.project.document import Cell, Drawing, Shot, Source, SourceKind
    from tooncrafter_studio.project.project import Project

    src = folder / "src"
    src.mkdir(parents=True)
    files = [f"frame.{i + 1:04d}.png" for i in range(frames)]
    for key in KEYS:  # the generated segments' keys are real files
        write_png(src / files[key], synthetic_frame(key, background))
    source = Source("s1", SourceKind.SEQUENCE, "src", files, WIDTH, HEIGHT, 24.0, frames)
    shot = Shot("bench", 24.0, WIDTH, HEIGHT, sources={"s1": source})
    for i in range(frames // 2):  # 1,000 drawings on 2s: 2,000 timeline frames
        shot.drawings[f"d{i}"] = Drawing(f"d{i}", "s1", i, is_key=i in KEYS)
        shot.cells.append(Cell(f"d{i}", 2))
    return Project(folder, shot)


def run() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    frames = int(os.environ.get("BENCH_UI_FRAMES", "2000"))
    seconds = float(os.environ.get("BENCH_UI_SECONDS", "4"))
    home = tempfile.mkdtemp(prefix="bench-ui-")
    os.environ["TOONCRAFTER_STUDIO_HOME"] = home
    from PySide6.QtWidgets import QApplication

    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.project.resolve import ImageRef
    from tooncrafter_studio.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication(["bench_ui"])
    background = np.full((HEIGHT, WIDTH, 3), (200, 225, 245), np.uint8)
    background[700:] = (90, 170, 90)
    project = build_project(Path(home) / "shot", frames, background)
    window = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
    window.prompts.ask_unsaved = lambda: "discard"
    window.resize(1600, 1000)
    window.show()
    window.images.frames.cache.set_budget(900 << 20)  # ~150 frames of 1080p RGB
    decoded = [0]

    def load(ref: ImageRef) -> np.ndarray:
        if ref.kind == "source":
            decoded[0] += 1
            return synthetic_frame(ref.index, background)
        return original_load(ref)

    original_load = window.images.provider.load
    window.images.provider.load = load  # the loaders call provider.load from their threads
    meter = StallMeter()

    def pump(duration: float, step=None, every_s: float = 1 / 60) -> None:
        end = time.perf_counter() + duration
        next_step = 0.0
        while time.perf_counter() < end:
            now = time.perf_counter()
            if step is not None and now >= next_step:
                step()
                next_step = now + every_s
            app.processEvents()
            time.sleep(0.0005)

    try:
        window.files.set_project(project)
        pump(1.0)
        # steady state: the engines' probes (which import torch in the background) have finished
        from tooncrafter_studio.engines.registry import engine_ids

        started = time.perf_counter()
        while len(window.generation.probes) < len(engine_ids()) and time.perf_counter() - started < 120:
            pump(0.2)
        print(f"engine probes done after {time.perf_counter() - started + 1:.1f} s: "
              + ", ".join(f"{k} {'ok' if v.available else 'unavailable'}" for k, v in window.generation.probes.items()))
        print(f"shot: {window.timeline.frame_count} frames of {WIDTH}x{HEIGHT} "
              f"({len(project.shot.cells)} drawings on 2s), pixels generated on demand")
        results: list[tuple[str, float, float]] = []

        # (c) thumbnails loading while the sheet is scrolled to new places
        window.timeline.set_zoom(24)
        window.images.thumbnails.invalidate()
        bar = window.timeline.horizontalScrollBar()
        positions = iter(np.linspace(0, bar.maximum(), 12).astype(int))
        meter.start()
        started = time.perf_counter()
        pump(seconds, lambda: bar.setValue(int(next(positions, bar.value()))), every_s=seconds / 12)
        stall = meter.stop()
        pump(0.5)
        results.append(("(c) thumbnails loading while scrolling", *stall))
        print(f"thumbnails made: {len(window.images.thumbnails.cache)} in {time.perf_counter() - started:.1f} s")

        # (a1) scrolling and scrubbing the 2,000-frame sheet at 60 Hz
        state = {"frame": 1}

        def scrub() -> None:
            state["frame"] = state["frame"] % frames + 7
            window.view.set_current_frame(state["frame"])

        meter.start()
        pump(seconds, scrub)
        results.append(("(a) scrub + scroll the sheet at 60 Hz", *meter.stop()))

        # (a2) playback at the shot's 24 fps through frames not yet decoded
        window.view.set_current_frame(1001)
        painted = window.viewer.paint_count
        meter.start()
        window.view.toggle_play()
        pump(seconds)
        window.view.toggle_play()
        results.append(("(a) playback 24 fps, decoding ahead", *meter.stop()))
        print(f"playback while decoding: {(window.viewer.paint_count - painted) / seconds:.1f} painted frames/s")

        # playback from the cache: a 96-frame range, warmed first; at 24 fps and as fast as it goes
        first, last = 1, 96
        for frame in range(first, last + 1, 2):
            window.images.frames.load_now(window.session.frames()[frame - 1].image)
        window.timeline.set_selection(first, last)
        window.actions["play_range"].setChecked(True)
        for fps in (24.0, 60.0, 240.0):
            window.playback.fps = fps
            project.shot.fps = fps
            window.view.set_current_frame(first)
            full = {"n": 0}
            expected_refs = {f.frame: f.image for f in window.session.frames()[first - 1:last]}

            def count(frame: int, refs=expected_refs, tally=full) -> None:
                image = window.images.frames.peek(refs[frame])
                if image is not None and window.viewer.image is image:
                    tally["n"] += 1

            window.playback.frame.connect(count)
            painted = window.viewer.paint_count
            meter.start()
            window.view.toggle_play()
            pump(seconds)
            window.view.toggle_play()
            stall = meter.stop()
            window.playback.frame.disconnect(count)
            shown = full["n"] / seconds
            rendered = (window.viewer.paint_count - painted) / seconds
            label = f"(a) playback {fps:.0f} fps from the cache"
            results.append((label, *stall))
            print(f"playback at {fps:.0f} fps from the cache: {shown:.1f} full-res frames/s shown, "
                  f"{rendered:.1f} paints/s ({100 * shown / fps:.0f}% of the target)")
        window.actions["play_range"].setChecked(False)

        # (b) generation jobs (flow engine, 1080p keys, 3 segments of 3 in-betweens) while the user scrubs
        window.timeline.select_span(window.session.spans()[0])
        meter.start()
        started = time.perf_counter()
        tasks = window.generation.generate(window.session.spans())
        pump(0.2)
        while window.worker.busy and time.perf_counter() - started < 120:
            pump(0.05, scrub)
        job_s = time.perf_counter() - started
        stall = meter.stop()
        states = [t.state for t in tasks]
        results.append(("(b) generation jobs running (flow, 1080p)", *stall))
        print(f"generation: {len(tasks)} jobs ({', '.join(states)}) in {job_s:.1f} s"
              + "".join(f"; {t.error}" for t in tasks if t.error))

        print(f"\n{'phase':45s} {'longest stall':>14s} {'p99 gap':>9s}   goal <= {GOAL_MS:.0f} ms")
        for label, longest, p99 in results:
            verdict = "ok" if longest <= GOAL_MS else "OVER"
            print(f"{label:45s} {longest:11.1f} ms {p99:6.1f} ms   {verdict}")
        print(f"frames generated by the synthetic source: {decoded[0]}")
    finally:
        window.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    run()
