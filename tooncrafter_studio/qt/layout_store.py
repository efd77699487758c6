"""The window's geometry and dock layout, remembered between sessions.

Kept apart from `Settings` (Qt's own opaque byte blobs): a small ini file in the user config
folder, written through QSettings with an explicit path so TOONCRAFTER_STUDIO_HOME isolates it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

from ..core.paths import user_config_dir

log = logging.getLogger(__name__)

LAYOUT_FILE = "window_layout.ini"
LAYOUT_VERSION = 1  # bump when docks are added or renamed: an old layout is then ignored


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
        store.setValue("window/geometry", bytes(window.saveGeometry().toBase64()).decode("ascii"))
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
    """Put back the last saved geometry and dock state; a missing or damaged file changes nothing."""
    if not layout_path().is_file():
        return False
    store = _store()
    geometry, state = store.value("window/geometry"), store.value("window/state")
    if not isinstance(geometry, str) or not isinstance(state, str):
        return False
    restored = window.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
    restored = window.restoreState(QByteArray.fromBase64(state.encode("ascii")), LAYOUT_VERSION) and restored
    if not restored:
        log.info("The saved window layout in %s was not usable; the default layout is kept.", layout_path())
    return restored
