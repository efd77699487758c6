"""How the studio talks to the user: status-bar messages, yes/no questions, error boxes.

One object, given to every part of the window, so that tests answer the questions in one place
(`prompts.ask`, `prompts.ask_unsaved`) and no part needs the window to speak.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QMessageBox

from ..core.errors import StudioError

log = logging.getLogger(__name__)

APP_NAME = "ToonCrafter Studio"


class Prompts(QObject):
    shown = Signal(str)  # every status-bar message, as it is shown

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.window.statusBar().showMessage(text, timeout_ms)
        log.info("%s", text)
        self.shown.emit(text)

    def ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self.window, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel' for unsaved changes (tests replace this method)."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self.window, APP_NAME, "The shot has unsaved changes. Save them?", buttons)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def show_error(self, title: str, error: BaseException) -> None:
        text = str(error) if isinstance(error, StudioError) else f"{type(error).__name__}: {error}"
        log.warning("%s: %s", title, text)
        self.show_message(text)
        if QGuiApplication.platformName() != "offscreen":
            QMessageBox.warning(self.window, title, text)
