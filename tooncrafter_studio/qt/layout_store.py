"""The window's geometry and dock layout, remembered between sessions.

The geometry is remembered per screen (a laptop panel and an external monitor each keep their own);
on a screen with none remembered the window opens inside its available area (a 1280x720 screen
shows the whole exposure sheet and inspector), never at a fixed size that runs off the edge.
Kept apart from `Settings` (Qt's own opaque byte blobs): a small ini file in the user config
folder, written through QSettings with an explicit path so TOONCRAFTER_STUDIO_HOME isolates it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QSettings, QSize
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QMainWindow

from ..core.paths import user_config_dir

log = logging.getLogger(__name__)

LAYOUT_FILE = "window_layout.ini"
LAYOUT_VERSION = 1  # bump when docks are added or renamed: an old layout is then ignored
PREFERRED_SIZE = QSize(1400, 900)
SCREEN_SHARE = 0.92  # of the available area at most: room for the title bar and the frame


def screen_key(screen: QScreen | None) -> str:
    """Which screen a geometry belongs to: its name and size (a resolution change is another screen)."""
    if screen is None:
        return "none"
    size = screen.geometry().size()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", screen.name() or "screen")
    return f"{name}-{size.width()}x{size.height()}"


def default_geometry(available: QRect, preferred: QSize = PREFERRED_SIZE) -> QRect:
    """The preferred size, shrunk to fit `available` (the screen minus panels), centred in it."""
    width = min(preferred.width(), int(available.width() * SCREEN_SHARE))
    height = min(preferred.height(), int(available.height() * SCREEN_SHARE))
    rect = QRect(0, 0, width, height)
    rect.moveCenter(available.center())
    return rect


def fit_on_screen(window: QMainWindow, available: QRect | None = None) -> None:
    """Give the window its default geometry on `available` (default: its screen's available area)."""
    if available is None:
        screen = window.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            window.resize(PREFERRED_SIZE)
            return
        available = screen.availableGeometry()
    window.setGeometry(default_geometry(available))


def _fits(window: QMainWindow, available: QRect) -> bool:
    return available.contains(window.geometry())


def layout_path() -> Path:
    return user_config_dir() / LAYOUT_FILE


def _store() -> QSettings:
    path = layout_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)


def save_layout(window: QMainWindow) -> bool:
    """Write the window's geometry and dock state (base64); False if it could not be written."""
    try:
        store = _store()
        key = f"window/geometry/{screen_key(window.screen())}"
        store.setValue(key, bytes(window.saveGeometry().toBase64()).decode("ascii"))
        store.setValue("window/state", bytes(window.saveState(LAYOUT_VERSION).toBase64()).decode("ascii"))
        store.sync()
        if store.status() != QSettings.Status.NoError:
            log.warning("The window layout could not be saved to %s.", layout_path())
            return False
        return True
    except OSError as exc:
        log.warning("The window layout could not be saved to %s: %s", layout_path(), exc)
        return False


def restore_layout(window: QMainWindow) -> bool:
    """Put back the geometry saved for this screen and the dock state; without one (or with a damaged
    file) the window fits the screen and keeps the default docks."""
    fit_on_screen(window)
    if not layout_path().is_file():
        return False
    store = _store()
    screen = window.screen() or QGuiApplication.primaryScreen()
    geometry = store.value(f"window/geometry/{screen_key(screen)}")
    if geometry is None:
        geometry = store.value("window/geometry")  # a layout saved before geometries were per screen
    state = store.value("window/state")
    if not isinstance(state, str):
        return False
    restored = window.restoreState(QByteArray.fromBase64(state.encode("ascii")), LAYOUT_VERSION)
    if isinstance(geometry, str):
        placed = window.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        if placed and screen is not None and not window.isMaximized() and not _fits(window, screen.availableGeometry()):
            fit_on_screen(window)  # saved on a larger screen of the same name: fit this one instead
        restored = restored and placed
    if not restored:
        log.info("The saved window layout in %s was not usable; the default layout is kept.", layout_path())
    return restored
