"""Settings → Cluster address: generation goes to the cluster runner as one background batch and its
takes land as undoable takes, while the window keeps handling events."""

from __future__ import annotations

import dataclasses
import threading

from PySide6.QtCore import Qt
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.engines.registry import create_engine
from tooncrafter_studio.pipeline import cluster_ray
from tooncrafter_studio.pipeline.runner import run_job
from tooncrafter_studio.qt.dialogs.settings import SettingsDialog


def test_settings_dialog_keeps_the_cluster_address(qtbot):
    dialog = SettingsDialog(Settings(cluster_address="ray://head:10001"), ["flow"])
    qtbot.addWidget(dialog)
    assert dialog.result_settings().cluster_address == "ray://head:10001"
    dialog.cluster_address.setText("  ")
    assert dialog.result_settings().cluster_address == ""


def test_generate_with_a_cluster_address_runs_one_batch_off_the_ui_thread(qtbot, window, project_folder,
                                                                         monkeypatch):
    calls = []
    release = threading.Event()

    def fake_run_on_ray(jobs, address, *, cancel=None, progress=None, **_):
        calls.append((len(jobs), address, threading.current_thread() is threading.main_thread()))
        release.wait(10)  # the cluster is busy: the UI must not wait for it
        engine = create_engine("flow")
        for job in jobs:
            yield run_job(job, engine, None, cancel)

    monkeypatch.setattr(cluster_ray, "run_on_ray", fake_run_on_ray)
    window.files.open_project(project_folder)
    window.generation.settings = dataclasses.replace(window.generation.settings, cluster_address="ray://head:1")
    window.timeline.setFocus()
    spans = window.session.spans()
    window.generation.generate(spans)
    qtbot.waitUntil(lambda: bool(calls), timeout=PATIENCE_MS)
    assert calls == [(2, "ray://head:1", False)]
    qtbot.keyClick(window.timeline, Qt.Key.Key_Right)  # the window still answers
    assert window.session.shot.takes == {}
    release.set()
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 2, timeout=PATIENCE_MS)
    assert sorted(t.label for t in window.session.shot.takes.values()) == ["T1", "T1"]
    window.session.project.undo()
    assert len(window.session.shot.takes) == 1
