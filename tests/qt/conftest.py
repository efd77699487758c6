"""Qt test set-up: offscreen, a shot built in memory, and no thread left running after a test."""

from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")

from engines_for_tests import SlowEngine, StepGate  # noqa: E402
from qt_helpers import make_shot  # noqa: E402

import tooncrafter_studio.qt  # noqa: E402,F401  (applies the PySide6 refcount work-around first)


@pytest.fixture(autouse=True)
def no_threads_left(qapp):
    """Every QThread the studio starts, and every pool thread, is finished when a test ends."""
    from tooncrafter_studio.qt.worker import running_threads

    before = {t.ident for t in threading.enumerate()}
    yield
    from PySide6.QtCore import QThreadPool
    QThreadPool.globalInstance().waitForDone(5000)
    assert running_threads() == [], "a QThread is still running after the test"
    extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()
             and not isinstance(t, threading._DummyThread)]  # noqa: SLF001
    assert extra == [], f"threads left running: {extra}"


@pytest.fixture(autouse=True)
def slow_engine_gate():
    """The slow test engine takes its first step (a preview, the first progress) and then waits
    until the test allows more or opens the gate; a cancel ends the wait."""
    gate = SlowEngine.gate = StepGate(tokens=1)
    yield gate
    gate.open()  # nothing stays parked at the gate after the test
    SlowEngine.gate = None


@pytest.fixture
def project_folder(tmp_path):
    """A saved project: 9 drawings on 2s (18 frames), keys at drawings 1, 5 and 9."""
    from tooncrafter_studio.project.project import Project

    folder = tmp_path / "shot"
    Project.create(folder, make_shot(folder, drawings=9, lengths=[2] * 9, keys=(0, 4, 8)))
    return folder


@pytest.fixture
def window(qtbot, monkeypatch):
    """The real main window, with questions answered by the test (default: yes / discard)."""
    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.qt.main_window import MainWindow

    win = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
    win.answers = []  # what ask() returns, in order (then True)
    monkeypatch.setattr(win.prompts, "ask", lambda title, text: win.answers.pop(0) if win.answers else True)
    monkeypatch.setattr(win.prompts, "ask_unsaved", lambda: "discard")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    yield win
    win.close()
    assert not win.worker.busy
