"""Start the desktop app: `tooncrafter-studio [PROJECT | --project PATH]`.

Importing this module imports Qt and the Qt-free core, never torch: the window is up before any
CUDA initialisation (the ToonCrafter engine's probe runs later, off the UI thread).
"""

from __future__ import annotations

import argparse
import logging
import sys

from PySide6.QtCore import QEvent, QObject

from ..core.logging import configure_logging
from ..core.paths import user_log_dir
from ..project.project import project_folder_of

log = logging.getLogger(__name__)


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tooncrafter-studio", description="ToonCrafter Studio (desktop app)")
    parser.add_argument("--project", help="open this project folder")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    # packaging checks: open, paint once, print what opened (one JSON line on stdout), quit
    parser.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    known, _unknown = parser.parse_known_args(args)  # Qt's own options (-platform ...) pass through
    return known


class FileOpenEvents(QObject):
    """macOS hands a project opened from the Finder (or `open -a`) over as a QFileOpenEvent, not in argv."""

    def __init__(self, window, parent: QObject) -> None:
        super().__init__(parent)
        self.window = window

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.FileOpen:
            path = event.file()
            self.window.files.open_project(project_folder_of(path) or path)
            return True
        return False


def run_app(args: list[str] | None = None) -> int:
    """Open the main window and run the event loop; returns the exit code."""
    options = parse_args(list(sys.argv[1:] if args is None else args))
    configure_logging(logging.DEBUG if options.debug else logging.INFO, user_log_dir() / "studio.log")
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "tooncrafter-studio"])
    app.setApplicationName("ToonCrafter Studio")
    app.setOrganizationName("ToonCrafter Studio")
    app.setStyle("Fusion")
    window = MainWindow()
    window.show()
    app.installEventFilter(FileOpenEvents(window, app))
    window.files.open_startup(options.project)
    if options.smoke_test:
        _report_and_quit(app, window)
    code = app.exec()
    if window.isVisible():  # the loop ended without a close (e.g. a signal): still stop the threads
        window.shutdown()
    return int(code)


def _report_and_quit(app, window) -> None:
    """For `make bench` and the packaged smoke test: what opened and when the first paint happened."""
    import json
    import time

    from PySide6.QtCore import QTimer

    def report() -> None:
        window.grab()  # one full paint of the window
        project = window.session.project
        sys.stdout.write(json.dumps({"smoke": "ok", "project": project.folder.name if project else None,
                                     "frames": window.timeline.frame_count, "title": window.windowTitle(),
                                     "seconds_since_start": time.time() - _process_start()}) + "\n")
        sys.stdout.flush()
        window.close()
        app.quit()

    QTimer.singleShot(0, report)


def _process_start() -> float:
    """When this process started (wall clock), for cold-start figures that include the imports."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - psutil missing: measure from here
        import time

        return time.time()
