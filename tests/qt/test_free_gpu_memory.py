"""Settings → "Keep the model on the GPU between jobs" and Generate ▸ Free GPU Memory: after a job
(or a cancel) the kept engines give their GPU memory back when the setting is off, and the action
does it on demand, on the worker thread."""

from __future__ import annotations

import dataclasses
import threading

from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.pipeline.engines import EngineCache
from tooncrafter_studio.qt.dialogs.settings import SettingsDialog


def test_settings_dialog_keeps_the_keep_loaded_choice(qtbot):
    dialog = SettingsDialog(Settings(keep_model_loaded=False), ["flow"])
    qtbot.addWidget(dialog)
    assert dialog.result_settings().keep_model_loaded is False
    dialog.keep_model_loaded.setChecked(True)
    assert dialog.result_settings().keep_model_loaded is True


def _count_releases(monkeypatch):
    released = []
    monkeypatch.setattr(EngineCache, "release_gpu",
                        lambda self: released.append(threading.current_thread() is threading.main_thread()))
    return released


def test_a_job_releases_the_gpu_when_the_setting_says_so(qtbot, window, project_folder, monkeypatch):
    released = _count_releases(monkeypatch)
    window.files.open_project(project_folder)
    spans = window.session.spans()
    window.generation.generate(spans[:1])  # kept (the default): nothing is released
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 1, timeout=PATIENCE_MS)
    assert released == []
    window.generation.settings = dataclasses.replace(window.generation.settings, keep_model_loaded=False)
    window.generation.generate(spans[1:2])
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 2, timeout=PATIENCE_MS)
    qtbot.waitUntil(lambda: released == [False], timeout=PATIENCE_MS)  # once, off the UI thread


def test_free_gpu_memory_action_releases_on_the_worker_thread(qtbot, window, monkeypatch):
    released = _count_releases(monkeypatch)
    window.actions.trigger("free_gpu_memory")
    qtbot.waitUntil(lambda: released == [False], timeout=PATIENCE_MS)
