"""Qt test set-up: offscreen, a shot built in memory, and no thread left running after a test."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")

from tooncrafter_studio.media import write_png  # noqa: E402
from tooncrafter_studio.project.document import Cell, Drawing, Shot, Source, SourceKind  # noqa: E402


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


def draw_frame(index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """A white frame with a dark disc that moves right as `index` grows."""
    image = np.full((height, width, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = 12 + index * 6, height // 2
    image[(xx - cx) ** 2 + (yy - cy) ** 2 <= 64] = (30, 30, 40)
    return image


def make_shot(folder: Path, drawings: int = 9, lengths: list[int] | None = None, keys=(0, 4, 8)) -> Shot:
    """A shot of `drawings` PNG drawings in folder/src, exposures `lengths`, keys at drawing indices."""
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(drawings):
        name = f"frame.{i + 1:04d}.png"
        write_png(src / name, draw_frame(i))
        files.append(name)
    source = Source("s1", SourceKind.SEQUENCE, "src", files, 96, 64, 24.0, drawings)
    shot = Shot("test", 24.0, 96, 64, sources={"s1": source})
    lengths = lengths or [1] * drawings
    for i in range(drawings):
        shot.drawings[f"d{i}"] = Drawing(f"d{i}", "s1", i, is_key=i in keys)
        shot.cells.append(Cell(f"d{i}", lengths[i]))
    return shot


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
    monkeypatch.setattr(win, "ask", lambda title, text: win.answers.pop(0) if win.answers else True)
    monkeypatch.setattr(win, "ask_unsaved", lambda: "discard")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    yield win
    win.close()
    assert not win.worker.busy
