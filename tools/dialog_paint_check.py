"""Are the studio's menus and dialogs painted, or black? (issue 22, papercut 11)

Run under an X server, e.g. `xvfb-run -a python tools/dialog_paint_check.py --out shots/` (no window
manager) and the same with a window manager started first. Opens the window on the sample shot, then
one after another: the File menu, Settings, a file dialog (Qt's own), the recovery question and the
export dialog; for each it grabs the X screen itself (what a user would see, not what Qt thinks it
painted) and reports how much of the popup's area is pure black. Screenshots go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def black_share(image, rect) -> float:
    """Share of pure-black pixels of `image` (a QImage of the screen) inside `rect`."""
    rect = rect.intersected(image.rect())
    if rect.isEmpty():
        return 1.0
    black = total = 0
    step = 4
    for y in range(rect.top(), rect.bottom(), step):
        for x in range(rect.left(), rect.right(), step):
            total += 1
            if image.pixel(x, y) & 0xFFFFFF == 0:
                black += 1
    return black / max(1, total)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOONCRAFTER_STUDIO_HOME", tempfile.mkdtemp())

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.qt.main_window import MainWindow

    window = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
    window.show()
    parts = {name: getattr(window, name, window) for name in ("files", "dialogs")}  # older windows: one object
    parts["files"].open_startup(None)
    results: dict[str, float] = {}

    def settle(ms: int = 400) -> None:
        end = QTimer()
        end.setSingleShot(True)
        end.start(ms)
        while end.isActive():
            app.processEvents()

    def shot(name: str, widget) -> None:
        settle()
        screen = app.primaryScreen().grabWindow(0).toImage()
        screen.save(str(args.out / f"{args.label}{name}.png"))
        geometry = widget.frameGeometry() if widget.isWindow() else widget.geometry()
        results[name] = round(black_share(screen, geometry), 3)

    shot("0-window", window)
    menu = window.actions.menus["File"]
    menu.popup(window.mapToGlobal(window.menuBar().geometry().bottomLeft()))
    shot("1-file-menu", menu)
    menu.hide()
    settings = parts["dialogs"].settings_dialog()
    shot("2-settings", settings)
    settings.reject()
    files = QFileDialog(window, "Open project folder")
    files.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    files.open()
    shot("3-file-dialog", files)
    files.reject()
    question = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work?", "Recover them?",
                           QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, window)
    question.open()
    shot("4-recovery-question", question)
    question.reject()
    export = parts["dialogs"].export_dialog()
    shot("5-export", export)
    export.reject()
    settings = parts["dialogs"].settings_dialog()
    shot("6-settings-again", settings)
    settings.reject()
    print(json.dumps({"label": args.label, "black_share": results}))
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
