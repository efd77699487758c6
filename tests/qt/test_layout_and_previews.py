"""The window layout survives a restart; denoising previews show in the viewer while a job runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from engines_for_tests import SlowEngine
from PySide6.QtCore import Qt
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.project.commands import SetSegmentSettings
from tooncrafter_studio.qt.layout_store import layout_path
from tooncrafter_studio.qt.main_window import MainWindow


def open_window(qtbot) -> MainWindow:
    window = MainWindow(Settings(autosave_interval_s=0), persist_settings=True)
    window.prompts.ask_unsaved = lambda: "discard"
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_dock_layout_and_size_are_remembered_between_sessions(qtbot):
    first = open_window(qtbot)
    assert not first.docks["takes"].isHidden()
    default_size = first.size()
    first.docks["takes"].hide()
    first.docks["log"].setFloating(True)
    first.resize(700, 540)
    qtbot.waitUntil(lambda: first.size().width() == 700, timeout=PATIENCE_MS)
    assert default_size.width() != 700
    chosen = (first.size().width(), first.size().height())
    assert chosen[0] == 700
    assert first.close()
    assert layout_path().is_file()

    second = open_window(qtbot)
    try:
        assert second.docks["takes"].isHidden()
        assert second.docks["log"].isFloating()
        assert not second.docks["jobs"].isHidden()
        # the offscreen screen is small: Qt may clamp the restored height to it, never the width here
        assert second.size().width() == chosen[0] != default_size.width()
    finally:
        second.close()


def test_a_damaged_layout_file_keeps_the_default_layout(qtbot):
    layout_path().parent.mkdir(parents=True, exist_ok=True)
    layout_path().write_text("[window]\ngeometry=not base64 at all\nstate=@@@\n")
    window = open_window(qtbot)
    try:
        assert not window.docks["takes"].isHidden() and not window.docks["log"].isFloating()
    finally:
        window.close()


class SmallPreviewEngine(SlowEngine):
    """Sends previews at a model-like size of its own (32x20), not the shot's 96x64."""

    id = "small-preview-test"

    def interpolate(self, request, progress=None, cancel=None):
        small = np.zeros((20, 32, 3), np.uint8)
        small[:, :16] = (200, 30, 30)
        return super().interpolate(replace(request, start=small, end=small), progress, cancel)


@pytest.fixture
def slow_engine():
    for engine in (SlowEngine, SmallPreviewEngine):
        register_engine(engine.id, engine)
    yield
    for engine in (SlowEngine, SmallPreviewEngine):
        unregister_engine(engine.id)


def test_denoising_previews_show_in_the_viewer_until_the_job_is_cancelled(qtbot, slow_engine, window,
                                                                         project_folder, slow_engine_gate):
    window.files.open_project(project_folder)
    first, second = window.session.spans()[:2]
    window.session.push(SetSegmentSettings(first.key, engine="slow-test"))
    window.view.set_current_frame(first.start_frame + 1)
    assert window.viewer.overlay == ""
    qtbot.keyClick(window.timeline, Qt.Key.Key_G)
    task = window.worker.tasks[-1]
    qtbot.waitUntil(lambda: window.viewer.overlay.startswith("preview — step "), timeout=PATIENCE_MS)
    assert window.viewer.overlay.endswith("/400")
    assert window.viewer.image is window.view.job_preview.image  # the engine's picture, not the drawing
    assert window.viewer.border is None

    # another segment on screen: its own frames, no banner; back in the running one: the preview again
    window.view.set_current_frame(second.start_frame + 1)
    assert window.viewer.overlay == "" and window.viewer.image is not window.view.job_preview.image
    window.view.set_current_frame(first.start_frame)
    assert window.viewer.overlay.startswith("preview — step ")

    # a later preview moves the step on
    shown = window.viewer.overlay
    slow_engine_gate.allow(SlowEngine.steps // 8)  # up to the next preview (one every 50 steps)
    qtbot.waitUntil(lambda: window.viewer.overlay != shown, timeout=PATIENCE_MS)
    assert window.viewer.overlay.startswith("preview — step ")

    qtbot.mouseClick(window.jobs.buttons[task.id], Qt.MouseButton.LeftButton)
    # the state flips on the worker thread; the signal that clears the preview follows
    qtbot.waitUntil(lambda: task.state == "cancelled" and window.view.job_preview is None, timeout=PATIENCE_MS)
    assert window.view.job_preview is None and window.viewer.overlay == ""
    assert window.view.current_frame == first.start_frame
    # the key's own drawing comes back once it is decoded (it may still be loading right now)
    qtbot.waitUntil(lambda: window.viewer.image is not None, timeout=PATIENCE_MS)
    assert window.viewer.overlay == ""


def test_the_preview_goes_when_the_job_finishes(qtbot, slow_engine, window, project_folder, monkeypatch,
                                                slow_engine_gate):
    monkeypatch.setattr(SlowEngine, "steps", 60)
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="slow-test"))
    seen = []
    window.jobs.preview_ready.connect(lambda *_: seen.append(window.viewer.overlay))
    window.editing.generate_selection()
    # the first step's preview shows while the job runs; then the job is let through to its end
    qtbot.waitUntil(lambda: any(text.startswith("preview — step ") for text in seen), timeout=PATIENCE_MS)
    slow_engine_gate.open()
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 1, timeout=PATIENCE_MS)
    assert window.view.job_preview is None and window.viewer.overlay == ""


def test_copy_diagnostics_names_the_model_file_checked_off_the_ui_thread(qtbot, window, project_folder,
                                                                         tmp_path):
    import importlib.util

    import numpy as np
    safetensors_numpy = pytest.importorskip("safetensors.numpy")

    model = tmp_path / "tiny_model.safetensors"
    safetensors_numpy.save_file({"model.diffusion_model.out.2.weight": np.ones((4, 8), np.float32)}, str(model))
    window.files.open_project(project_folder)
    window.dialogs.set_model_path(str(model))
    assert not window.generation.model_identity_known  # checked by the probe pool, not in this call
    assert "Model file: (still being checked)" in window.dialogs.copy_diagnostics()
    qtbot.waitUntil(lambda: window.generation.model_identity_known, timeout=PATIENCE_MS)
    text = window.dialogs.copy_diagnostics()
    line = next(line for line in text.splitlines() if line.startswith("Model file: "))
    assert str(model) in line and f"{model.stat().st_size:,} bytes" in line
    if importlib.util.find_spec("torch") is not None:
        from tooncrafter_studio.diffusion.weights.checkpoint import identify

        assert f"fingerprint {identify(model).fingerprint}" in line
    else:
        assert "fingerprint head-tail:" in line


def test_copy_diagnostics_says_when_no_model_file_is_found(qtbot, window, project_folder, tmp_path):
    window.dialogs.set_model_path(str(tmp_path / "missing.ckpt"))
    qtbot.waitUntil(lambda: window.generation.model_identity_known, timeout=PATIENCE_MS)
    assert "Model file: none found" in window.dialogs.copy_diagnostics()


def test_a_preview_of_another_size_keeps_the_frame_place_and_zoom(qtbot, slow_engine, window, project_folder):
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="small-preview-test"))
    window.view.set_current_frame(span.start_frame + 1)
    window.viewer.zoom_actual()
    qtbot.waitUntil(lambda: window.viewer.image is not None and window.viewer.image.width == 96, timeout=PATIENCE_MS)
    before = window.viewer.image_rect()
    task = window.generation.generate([span])[0]
    qtbot.waitUntil(lambda: window.viewer.overlay.startswith("preview — step "), timeout=PATIENCE_MS)
    assert (window.viewer.image.width, window.viewer.image.height) == (32, 20)
    assert window.viewer.image_rect() == before  # drawn over the 96x64 frame's place, at 100 %
    window.worker.cancel(task)
    qtbot.waitUntil(lambda: task.state == "cancelled", timeout=PATIENCE_MS)
    assert window.viewer.overlay == "" and window.viewer.image_rect() == before
