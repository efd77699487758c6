"""The bar under the toolbar that says what is wrong with the open project, and offers the way out:
a project that could not be opened (open another) or drawings that are missing (locate them)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QPushButton, QToolBar


class ProblemBar(QToolBar):
    def __init__(self) -> None:
        super().__init__("Problem")
        self.setObjectName("problem_bar")
        self.setMovable(False)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.addWidget(self.label)
        self.open_other_button = QPushButton("Open another project…")
        self.open_other_action = self.addWidget(self.open_other_button)
        self.locate_button = QPushButton("Locate missing drawings…")
        self.locate_action = self.addWidget(self.locate_button)
        self.hide()

    def show_open_problem(self, text: str) -> None:
        self._show(text, open_other=True)

    def show_missing(self, text: str) -> None:
        self._show(text, open_other=False)

    def _show(self, text: str, open_other: bool) -> None:
        self.label.setText(text)
        self.open_other_action.setVisible(open_other)
        self.locate_action.setVisible(not open_other)
        self.show()
