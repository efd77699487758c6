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
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
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
    window.ask_unsaved = lambda: "discard"
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

    window.open_startup(None)
    if window.session.project is None:
        print("The sample shot is missing (tooncrafter_studio/resources/sample_shot); nothing to photograph.", file=sys.stderr)
        return 1
    settle(1.5, until=lambda: "flow" in window.generation.probes)
    shoot("first_run")

    window.generate_all()
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
    window.set_current_frame(spans[0].start_frame + 2)
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
    source = sorted((ROOT / "resources" / "sample_shot" / "frames").glob("*.png"))
    pose = read_image(source[min(len(source) - 1, middle + 1)])  # the animator wants the ball further on
    sketch_file = Path(home) / "pose.png"
    art = line_art(pose[..., :3])
    art[:, :, :] = np.roll(art, art.shape[1] // 5, axis=1)  # a rough pose: the ball drawn further to the right
    write_png(sketch_file, art)
    place_sketch(window.session, middle, sketch_file)
    window.set_current_frame(middle)
    window.inspector.set_span(spans[0])
    window.actions["sketch_overlay"].setChecked(True)
    settle(1.0)
    shoot("sketch")
    window.actions["sketch_overlay"].setChecked(False)

    if len(spans) > 1:
        window.timeline.select_span(spans[1])
        window.session.push(SetSegmentSettings(spans[1].key, engine="demo-slow"))
        window.generate_selection()
        settle(1.2)
        shoot("generating")
        window.worker.cancel_all()
        settle(0.5, until=lambda: not window.worker.busy)

    dialog = window.export_dialog()
    dialog.out_dir.setText(str(Path(home) / "export"))
    dialog.resize(620, 480)
    settle(0.3)
    shoot("export", dialog)
    dialog.close()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
