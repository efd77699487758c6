"""Render screenshots of the studio's main states (offscreen) into docs/ for the README.

    python tools/screenshots.py [--out docs]

Uses the sample shot in a throw-away user folder (your settings are not touched) and the flow
engine, so it runs anywhere: no GPU, no display.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "first_run": "studio-first-run.png",
    "review": "studio-review.png",
    "onion": "studio-onion-skin.png",
    "light_table": "studio-light-table.png",
    "generating": "studio-generating.png",
    "export": "studio-export.png",
    "sketch": "studio-sketch.png",
    "timing_import": "studio-timing-import.png",
    "timing_sheet": "studio-timing-sheet.png",
}

# A timing sheet for the sample shot (the bouncing ball, 12 drawings): keys 1, 5 and 9; in-between
# marks (○) where the flow engine is to draw; a reverse-sheet mark (●); an empty cell at the end;
# a second character's track; a line of dialogue and a camera move.
SAMPLE_SHEET = {
    "header": {"cut": "7", "scene": "1"},
    "timeTables": [{
        "duration": 26, "name": "bounce",
        "timeTableHeaders": [{"fieldId": 0, "names": ["ball", "shadow"]}, {"fieldId": 3, "names": ["Dialogue"]},
                             {"fieldId": 5, "names": ["Camera"]}],
        "fields": [
            {"fieldId": 0, "tracks": [
                {"trackNo": 0, "frames": [{"data": [{"id": 0, "values": [v]}], "frame": f} for f, v in [
                    (0, "1"), (2, "SYMBOL_TICK_1"), (4, "SYMBOL_TICK_1"), (6, "SYMBOL_TICK_1"), (8, "5"),
                    (11, "SYMBOL_TICK_2"), (12, "SYMBOL_TICK_1"), (14, "SYMBOL_TICK_1"), (16, "9"),
                    (22, "SYMBOL_NULL_CELL")]]},
                {"trackNo": 1, "frames": [{"data": [{"id": 0, "values": ["1"]}], "frame": 0}]}]},
            {"fieldId": 3, "tracks": [{"trackNo": 0, "frames": [
                {"data": [{"id": 0, "values": ["Boing!"]}], "frame": 8},
                {"data": [{"id": 0, "values": ["SYMBOL_NULL_CELL"]}], "frame": 14}]}]},
            {"fieldId": 5, "tracks": [{"trackNo": 0, "frames": [
                {"data": [{"id": 0, "values": ["FI"]}], "frame": 0},
                {"data": [{"id": 0, "values": ["PAN"]}], "frame": 16}]}]},
        ],
    }],
    "version": 5,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--only", choices=("timing",), default=None, help="only the timing-sheet pictures")
    options = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="studio-screenshots-")
    os.environ["TOONCRAFTER_STUDIO_HOME"] = home
    sys.path.insert(0, str(ROOT))

    from PySide6.QtWidgets import QApplication

    from tooncrafter_studio.core.progress import StageReporter
    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.engines.base import Engine, ProbeResult
    from tooncrafter_studio.engines.crossfade import CrossfadeEngine
    from tooncrafter_studio.engines.registry import register_engine
    from tooncrafter_studio.project.commands import SetSegmentSettings
    from tooncrafter_studio.project.document import ReviewStatus
    from tooncrafter_studio.qt.main_window import MainWindow

    class SlowPreviewEngine(Engine):
        """A crossfade that takes its time and shows previews, to photograph a running job."""

        id = "demo-slow"
        label = "Demo (slow)"

        def probe(self) -> ProbeResult:
            return ProbeResult(True, "demo")

        def interpolate(self, request, progress=None, cancel=None):
            reporter = StageReporter(progress, cancel, "denoise", 50)
            reporter.start()
            for step in range(50):
                time.sleep(0.05)
                reporter.step(preview=request.start if step % 10 == 0 else None)
            return CrossfadeEngine().interpolate(request, None, cancel)

    register_engine("demo-slow", SlowPreviewEngine)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(["screenshots"])
    app.setStyle("Fusion")
    window = MainWindow(Settings(autosave_interval_s=0, onion_skin_before=2, onion_skin_after=2),
                        persist_settings=False)
    window.prompts.ask_unsaved = lambda: "discard"
    window.resize(1440, 900)
    window.show()

    def settle(seconds: float = 0.6, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end or (until is not None and not until() and time.monotonic() < end + 30):
            app.processEvents()
            time.sleep(0.01)

    def shoot(state: str, widget=None) -> None:
        settle(0.4)
        path = out / FILES[state]
        (widget or window).grab().save(str(path))
        print(f"wrote {path}")

    window.files.open_startup(None)
    if window.session.project is None:
        print("The sample shot is missing (tooncrafter_studio/resources/sample_shot); nothing to photograph.", file=sys.stderr)
        return 1
    settle(1.5, until=lambda: "flow" in window.generation.probes)
    if options.only == "timing":
        shoot_timing_sheet(window, Path(home), settle, shoot)
        window.close()
        return 0
    shoot("first_run")

    window.editing.generate_all()
    settle(1.0, until=lambda: not window.worker.busy)
    shot = window.session.shot
    for index, take in enumerate(shot.takes.values()):  # a review in progress
        for i, frame in enumerate(take.frames):
            if index == 0:
                frame.status = ReviewStatus.REJECTED if i == 1 else ReviewStatus.ACCEPTED
    window.session.set_project(window.session.project)  # refresh every view
    window.viewer.set_hint("")
    spans = window.session.spans()
    window.timeline.select_span(spans[0])
    window.view.set_current_frame(spans[0].start_frame + 2)
    window.timeline.set_zoom(44)
    shoot("review")

    window.actions["onion_skin"].setChecked(True)
    settle(1.0)
    shoot("onion")
    window.actions["onion_skin"].setChecked(False)
    window.actions["light_table"].setChecked(True)
    settle(1.0)
    shoot("light_table")
    window.actions["light_table"].setChecked(False)

    # sketch guidance: a sketch (line art of the real drawing) on the middle in-between of the first pair
    from tooncrafter_studio.media import read_image, write_png
    from tooncrafter_studio.media.lineart import line_art
    from tooncrafter_studio.qt.widgets.sketch_row import place_sketch

    middle = spans[0].start_frame + max(1, spans[0].gap - 2)  # an accepted in-between of the review
    source = sorted((ROOT / "tooncrafter_studio" / "resources" / "sample_shot" / "frames").glob("*.png"))
    pose = read_image(source[min(len(source) - 1, middle + 1)])  # the animator wants the ball further on
    sketch_file = Path(home) / "pose.png"
    art = line_art(pose[..., :3])
    art[:, :, :] = np.roll(art, art.shape[1] // 5, axis=1)  # a rough pose: the ball drawn further to the right
    write_png(sketch_file, art)
    place_sketch(window.session, middle, sketch_file)
    window.view.set_current_frame(middle)
    window.inspector.set_span(spans[0])
    window.actions["sketch_overlay"].setChecked(True)
    settle(1.0)
    shoot("sketch")
    window.actions["sketch_overlay"].setChecked(False)

    if len(spans) > 1:
        window.timeline.select_span(spans[1])
        window.session.push(SetSegmentSettings(spans[1].key, engine="demo-slow"))
        window.editing.generate_selection()
        settle(1.2)
        shoot("generating")
        window.worker.cancel_all()
        settle(0.5, until=lambda: not window.worker.busy)

    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(Path(home) / "export"))
    dialog.resize(620, 480)
    settle(0.3)
    shoot("export", dialog)
    dialog.close()
    window.files.open_startup(None)
    shoot_timing_sheet(window, Path(home), settle, shoot)
    window.close()
    return 0


def shoot_timing_sheet(window, home: Path, settle, shoot) -> None:
    """File > Import Timing Sheet... on the sample shot: the preview, then the timed shot, generated."""
    import json

    sheet = home / "bounce.xdts"
    sheet.write_text("exchangeDigitalTimeSheet Save Data\n" + json.dumps(SAMPLE_SHEET, indent=1), encoding="utf-8")
    dialog = window.dialogs.import_timing_dialog(str(sheet))
    dialog.resize(680, 520)
    settle(0.3)
    shoot("timing_import", dialog)
    dialog.accept()
    settle(0.3)
    window.editing.generate_all()
    settle(1.0, until=lambda: not window.worker.busy)
    window.viewer.set_hint("")
    window.timeline.set_zoom(31)
    spans = window.session.spans()
    window.timeline.select_span(spans[1])
    window.view.set_current_frame(13)
    shoot("timing_sheet")


if __name__ == "__main__":
    sys.exit(main())
