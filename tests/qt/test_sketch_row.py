"""The sketch row: drop an image on an in-between cell of the exposure sheet, see its mark, set the
strength in the inspector, generate with an engine that records sketches, and find the sketch in
the take's provenance; undo removes it."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.project.commands import SetSegmentSettings


class SketchRecorder(Engine):
    id = "sketch-recorder-qt"
    label = "Records sketches"
    capabilities = EngineCapabilities(supports_prompt=True)
    accepts_sketches = True
    seen: list = []

    def probe(self):
        return ProbeResult(True, "test engine")

    def interpolate(self, request, progress=None, cancel=None):
        SketchRecorder.seen.append(list(request.params.get("sketches", [])))
        a, b = request.start.astype(np.float32), request.end.astype(np.float32)
        frames = [((1 - t) * a + t * b).round().astype(request.start.dtype) for t in request.times]
        return InterpolationResult(frames, {})


def _drop(timeline, frame: int, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    x = timeline.frame_x(frame) + timeline.frame_w / 2
    event = QDropEvent(QPointF(x, 40), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    timeline.dropEvent(event)


def test_drop_a_sketch_on_a_cell_generate_and_the_take_lists_it(qtbot, window, project_folder, tmp_path):
    register_engine(SketchRecorder.id, SketchRecorder)
    try:
        sketch = np.full((48, 64, 3), 255, np.uint8)
        cv2.line(sketch, (30, 4), (30, 44), (0, 0, 0), 2)
        path = tmp_path / "breakdown.png"
        cv2.imwrite(str(path), sketch)
        window.files.open_project(project_folder)
        span = window.session.spans()[0]  # keys at frames 1 and 9, in-betweens on 2s
        window.session.push(SetSegmentSettings(span.key, engine=SketchRecorder.id))

        _drop(window.timeline, 5, path)
        settings = window.session.shot.segments[span.key].settings
        assert list(settings.sketches) == [4] and settings.sketches[4].name == "breakdown.png"
        assert window.timeline.sketch_frames == {5}
        _drop(window.timeline, 1, path)  # a key is not an in-between cell: refused, nothing changes
        assert "not an in-between cell" in window.statusBar().currentMessage()
        assert list(window.session.shot.segments[span.key].settings.sketches) == [4]

        window.view.set_current_frame(5)
        window.actions["sketch_overlay"].setChecked(True)  # the viewer overlays the sketch on its cell
        assert "SKETCH" in window.viewer.badge and len(window.viewer.layers) == 1
        window.view.set_current_frame(3)
        assert "SKETCH" not in window.viewer.badge
        window.actions["sketch_overlay"].setChecked(False)
        window.actions["light_table"].setChecked(True)  # and the light table shows it with the keys
        window.view.set_current_frame(5)
        assert "SKETCH" in window.viewer.badge and "LIGHT TABLE" in window.viewer.badge
        window.actions["light_table"].setChecked(False)

        window.inspector.set_span(span)
        window.inspector.sketch_scale.setValue(0.85)
        assert window.session.shot.segments[span.key].settings.sketch_scale == 0.85

        window.editing.generate_selection()
        qtbot.waitUntil(lambda: len(window.session.shot.takes) >= 1, timeout=PATIENCE_MS)
        take = next(iter(window.session.shot.takes.values()))
        assert take.params["sketches"][0]["name"] == "breakdown.png" and take.params["sketches"][0]["offset"] == 4
        assert take.params["sketch_scale"] == 0.85 and take.params["sketches_used"] is True
        assert [s.time for s in SketchRecorder.seen[-1]] == [0.5]

        window.session.undo()  # the take
        window.session.undo()  # the strength
        window.session.undo()  # the sketch
        assert window.session.shot.segments[span.key].settings.sketches == {}
        assert window.timeline.sketch_frames == set()
    finally:
        unregister_engine(SketchRecorder.id)


def test_dropping_a_file_that_is_not_an_image_says_so_and_copies_nothing(qtbot, window, project_folder, tmp_path):
    fake = tmp_path / "pose.png"
    fake.write_text("not the pixels you are looking for\n")
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    _drop(window.timeline, 5, fake)
    assert "not an image" in window.statusBar().currentMessage()
    assert window.session.shot.segments.get(span.key) is None or not window.session.shot.segments[span.key].settings.sketches
    assert not (project_folder / "sketches").exists()
