"""Issue: a drawing whose file is missing showed the previous drawing in the viewer (a stale
picture) while its cell and the banner said "missing". It must show a blank frame with a marker."""

from __future__ import annotations

from PySide6.QtCore import QPointF
from qt_helpers import PATIENCE_MS


def _pixel(window, x: float, y: float):
    """The viewer's on-screen colour at frame pixel (x, y)."""
    viewer = window.viewer
    rect = viewer.image_rect()
    point = QPointF(rect.left() + (x + 0.5) * rect.width() / viewer.frame_size.width(),
                    rect.top() + (y + 0.5) * rect.height() / viewer.frame_size.height())
    return viewer.grab().toImage().pixelColor(int(point.x()), int(point.y())).getRgb()[:3]


def _settled(qtbot, window, shown=lambda: True) -> None:
    """Wait until the loaders are idle and the viewer shows what `shown` says (their signals queue)."""
    qtbot.waitUntil(lambda: window.images.frames.pending_count() == 0
                    and window.images.thumbnails.pending_count() == 0 and shown(), timeout=PATIENCE_MS)


def _a_drawing(window) -> bool:
    return window.viewer.image is not None and window.viewer.overlay == ""


def _missing(window) -> bool:
    return window.viewer.image is None and "missing" in window.viewer.overlay.lower()


def test_a_missing_drawing_shows_blank_with_a_marker_never_the_previous_one(qtbot, window, project_folder):
    (project_folder / "src" / "frame.0004.png").unlink()  # drawing 4: timeline frames 7 and 8
    assert window.files.open_project(project_folder)
    window.view.set_current_frame(5)  # drawing 3: its disc is at x = 12 + 2 * 6
    _settled(qtbot, window, lambda: _a_drawing(window))
    window.view.show_current()
    assert window.viewer.image is not None and window.viewer.overlay == ""
    assert max(_pixel(window, 24, 32)) < 80  # the disc of drawing 3, dark

    window.view.set_current_frame(7)
    _settled(qtbot, window, lambda: _missing(window))
    assert window.viewer.image is None  # not drawing 3's picture kept on screen
    assert "missing" in window.viewer.overlay.lower() and "frame.0004.png" in window.viewer.overlay
    assert _pixel(window, 24, 32) == (255, 255, 255)  # blank where drawing 3's disc was
    assert _pixel(window, 30, 32) == (255, 255, 255)  # and where drawing 4's would be

    window.view.set_current_frame(9)  # the next drawing is there again: its picture, no marker
    _settled(qtbot, window, lambda: _a_drawing(window))
    window.view.show_current()
    assert window.viewer.image is not None and window.viewer.overlay == ""


def test_a_frame_becoming_missing_while_shown_turns_blank_once_its_load_fails(qtbot, window, project_folder):
    assert window.files.open_project(project_folder)
    window.view.set_current_frame(3)
    _settled(qtbot, window)
    (project_folder / "src" / "frame.0004.png").unlink()
    window.view.set_current_frame(7)  # not loaded yet (only thumbnails of other frames may be cached)
    window.images.frames.invalidate()
    window.images.thumbnails.invalidate()
    window.view.show_current()
    _settled(qtbot, window, lambda: _missing(window))
    assert window.viewer.image is None and "missing" in window.viewer.overlay.lower()


def test_a_moved_copy_reading_the_originals_drawings_says_so(qtbot, window, project_folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(project_folder, copy)
    (copy / "src").rename(copy / "src-renamed")  # the copy's own drawings folder is gone
    assert window.files.open_project(copy)
    text = window.problem_bar.label.text()
    assert window.problem_bar.isVisibleTo(window)
    assert "original location" in text and str(project_folder / "src") in text
