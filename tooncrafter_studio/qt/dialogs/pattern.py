"""New project from a sequence pattern: the pattern (typed, or any numbered frame picked with
Browse), hold detection, and the project folder, like the folder route of New Project."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from .form_rows import path_row

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.exr);;All files (*)"


def default_project_folder(pattern: str) -> str:
    """frames/walk.####.png -> frames/walk_project."""
    path = Path(pattern)
    stem = path.name.split(".")[0].split("%")[0].rstrip("_#-") or "shot"
    return str(path.parent / f"{stem}_project")


class PatternDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project from a sequence pattern")
        self.setObjectName("pattern_dialog")
        self.pattern = QLineEdit()
        self.pattern.setPlaceholderText("e.g. /shots/sc01/frame.####.png or frame_%04d.png")
        self.folder = QLineEdit()
        self.detect_holds = QCheckBox("Detect holds (identical frames become one drawing held longer)")
        self.detect_holds.setChecked(True)
        hint = QLabel("A pattern, or any one numbered frame of the sequence: its neighbours are found.")
        hint.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Frames", path_row(self.pattern, self._browse_pattern))
        form.addRow("", hint)
        form.addRow("", self.detect_holds)
        form.addRow("Project folder", path_row(self.folder, self._browse_folder))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Create")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.pattern.textChanged.connect(self._pattern_changed)
        self._folder_edited = False
        self.folder.textEdited.connect(lambda _t: setattr(self, "_folder_edited", True))
        self._pattern_changed("")

    def _pattern_changed(self, text: str) -> None:
        if text.strip() and not self._folder_edited:  # follow the pattern until the user types a folder
            self.folder.setText(default_project_folder(text.strip()))
        self.ok_button.setEnabled(bool(text.strip() and self.folder.text().strip()))

    def _browse_pattern(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A numbered frame of the sequence", self.pattern.text(),
                                              IMAGE_FILTER)
        if path:
            self.pattern.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getSaveFileName(self, "New project folder", self.folder.text())[0]
        if path:
            self._folder_edited = True
            self.folder.setText(path)

    def values(self) -> tuple[str, str, bool]:
        """(pattern, project folder, detect holds)."""
        return self.pattern.text().strip(), self.folder.text().strip(), self.detect_holds.isChecked()
