"""File ▸ Import Timing Sheet…: pick an XDTS or CSV sheet and a cell track, see what changes, apply.

The preview is the import plan itself (export/sheet_timing.py): frames, cells and holds, keys, the
in-between frames that generation will make, unmatched names, the tracks and fields left read-only.
Nothing changes until Import; then the plan is pushed as one undoable command by the window.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import StudioError
from ...export.sheet_io import read_sheet
from ...export.sheet_timing import TimingPlan, plan_import
from ...project.document import Shot
from ...project.resolve import key_spans
from ...project.timing_sheet import Sheet
from .form_rows import path_row

SHEET_FILTER = "Timing sheets (*.xdts *.csv);;XDTS (*.xdts);;CSV (*.csv);;All files (*)"


class TimingSheetDialog(QDialog):
    def __init__(self, shot: Shot, path: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import timing sheet")
        self.setObjectName("timing_sheet_dialog")
        self.resize(640, 460)
        self.shot = shot
        self.sheet: Sheet | None = None
        self.plan: TimingPlan | None = None
        self.path = QLineEdit(path)
        self.path.setPlaceholderText("an .xdts file, or a CSV exposure sheet")
        self.track = QComboBox()
        self.set_fps = QCheckBox("Set the frame rate")
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.1, 1000.0)
        self.fps.setDecimals(3)
        self.fps.setValue(shot.fps)
        fps_row = QHBoxLayout()
        fps_row.addWidget(self.set_fps)
        fps_row.addWidget(self.fps)
        fps_row.addStretch(1)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setObjectName("timing_preview")
        form = QFormLayout()
        form.addRow("Sheet", path_row(self.path, self._browse))
        form.addRow("Cell track", self.track)
        form.addRow("Frame rate", fps_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Import")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addWidget(buttons)
        self.path.editingFinished.connect(self.load)
        self.track.currentIndexChanged.connect(lambda _i: self.update_preview())
        self.set_fps.toggled.connect(lambda _on: self.update_preview())
        self.fps.valueChanged.connect(lambda _v: self.update_preview())
        self.fps.setEnabled(False)
        self.set_fps.toggled.connect(self.fps.setEnabled)
        if path:
            self.load()
        else:
            self.update_preview()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Timing sheet", self.path.text(), SHEET_FILTER)
        if path:
            self.path.setText(path)
            self.load()

    def load(self) -> None:
        """Read the sheet named in the path box; its cell tracks fill the track list."""
        self.sheet = None
        text = self.path.text().strip()
        self.track.blockSignals(True)
        self.track.clear()
        error = ""
        if text:
            try:
                self.sheet = read_sheet(text)
            except StudioError as exc:
                error = str(exc)
        if self.sheet is not None:
            for track in self.sheet.cell_tracks:
                self.track.addItem(track.name)
            if self.sheet.fps is not None:
                self.fps.setValue(self.sheet.fps)
                self.set_fps.setChecked(True)
        self.track.blockSignals(False)
        self.update_preview(error)

    def update_preview(self, error: str = "") -> None:
        self.plan = None
        if self.sheet is not None:
            try:
                self.plan = plan_import(self.shot, self.sheet, self.track.currentText() or None,
                                        self.fps.value() if self.set_fps.isChecked() else None)
            except StudioError as exc:
                error = str(exc)
        self.ok_button.setEnabled(self.plan is not None)
        if self.plan is None:
            self.preview.setPlainText(error or "Choose an XDTS or CSV timing sheet.")
            return
        self.preview.setPlainText("\n".join(self.change_lines(self.plan)))

    def change_lines(self, plan: TimingPlan) -> list[str]:
        """Before -> after, then the plan's own summary."""
        shot = self.shot
        frames_after = sum(c.length for c in plan.cells)
        keys_before = sum(1 for d in shot.drawings.values() if d.is_key)
        marks = plan.inbetweens
        lines = [
            f"Frames: {shot.frame_count} → {frames_after}",
            f"Cells: {len(shot.cells)} → {len(plan.cells)} ({plan.holds} held)",
            f"Key drawings: {keys_before} → {len(plan.keys)}; key pairs: {len(key_spans(shot))} → "
            f"{len(plan.offsets)}",
            f"In-between frames to generate: {marks}",
        ]
        if plan.fps is not None and plan.fps != shot.fps:
            lines.append(f"Frame rate: {shot.fps:g} → {plan.fps:g} fps")
        return [*lines, "", *plan.summary(), "", "Import is one step: Edit ▸ Undo takes it back."]
