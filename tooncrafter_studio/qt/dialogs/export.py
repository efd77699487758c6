"""The export dialog: preset, naming with a live first/last file preview, what to include, timing
sheet; the export runs on its own worker thread with a progress bar and Cancel."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import StudioError
from ...core.progress import ProgressEvent
from ...export import PRESETS, ExportOptions, ExportReport, export_sequence, preview_names
from ...export.exporter import MissingDrawingsError, check_drawings_present
from ...project.document import Shot
from ..worker import Task, Worker
from .form_rows import path_row

log = logging.getLogger(__name__)

SEPARATORS = (("preset's", None), ("dot  name.0001", "."), ("underscore  name_0001", "_"), ("none  name0001", "none"))
SHEETS = (("CSV and XDTS", "both"), ("CSV", "csv"), ("XDTS", "xdts"), ("None", "none"))


class ExportDialog(QDialog):
    exported = Signal(object)  # ExportReport
    locate_missing = Signal()  # "Locate missing drawings…": the window relinks, then export can run

    def __init__(self, shot: Shot, project_folder: Path, out_dir: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export PNG sequence")
        self.shot = shot
        self.project_folder = Path(project_folder)
        self.worker = Worker(self)
        self.task: Task | None = None
        self.report: ExportReport | None = None

        self.out_dir = QLineEdit(out_dir or str(self.project_folder / "export"))
        out_row = path_row(self.out_dir, self._browse)
        self.preset = QComboBox()
        for preset_id, preset in PRESETS.items():
            self.preset.addItem(f"{preset.tool}  ({preset_id})", preset_id)
        self.name = QLineEdit(shot.name or "shot")
        self.separator = QComboBox()
        for label, value in SEPARATORS:
            self.separator.addItem(label, value)
        self.padding = QSpinBox()
        self.padding.setRange(0, 8)
        self.padding.setSpecialValueText("preset's")
        self.start_number = QSpinBox()
        self.start_number.setRange(-1, 100_000)
        self.start_number.setSpecialValueText("preset's")
        self.start_number.setValue(-1)
        self.include_pending = QCheckBox("Include pending in-betweens (rejected ones never are)")
        self.drawings_only = QCheckBox("Drawings only (one file per drawing; holds in the timing sheet)")
        self.timing_sheet = QComboBox()
        for label, value in SHEETS:
            self.timing_sheet.addItem(label, value)
        self.overwrite = QCheckBox("Overwrite files this export did not write")
        self.preview = QLabel()
        self.preview.setObjectName("naming_preview")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.locate_button = QPushButton("Locate missing drawings…")
        self.locate_button.setVisible(False)
        self.locate_button.clicked.connect(self.locate_missing.emit)

        form = QFormLayout()
        form.addRow("Folder", out_row)
        form.addRow("Preset", self.preset)
        form.addRow("Name", self.name)
        form.addRow("Separator", self.separator)
        form.addRow("Padding", self.padding)
        form.addRow("Start number", self.start_number)
        form.addRow("", self.include_pending)
        form.addRow("", self.drawings_only)
        form.addRow("Timing sheet", self.timing_sheet)
        form.addRow("", self.overwrite)
        form.addRow("Files", self.preview)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.locate_button)
        layout.addWidget(self.buttons)
        self.export_button.setDefault(True)  # Enter exports (once in the dialog): keyboard all the way

        for widget in (self.preset, self.separator, self.timing_sheet):
            widget.currentIndexChanged.connect(self.update_preview)
        for widget in (self.padding, self.start_number):
            widget.valueChanged.connect(self.update_preview)
        self.name.textChanged.connect(self.update_preview)
        self.include_pending.toggled.connect(self.update_preview)
        self.drawings_only.toggled.connect(self.update_preview)
        self.update_preview()

    def options(self) -> ExportOptions:
        return ExportOptions(
            out_dir=self.out_dir.text().strip(),
            preset=self.preset.currentData(),
            name=self.name.text().strip() or None,
            separator=self.separator.currentData(),
            padding=self.padding.value() or None,
            start_number=None if self.start_number.value() < 0 else self.start_number.value(),
            include_pending=self.include_pending.isChecked(),
            drawings_only=self.drawings_only.isChecked(),
            timing_sheet=self.timing_sheet.currentData(),
            overwrite=self.overwrite.isChecked(),
        )

    def update_preview(self, *_args) -> None:
        try:
            first, last = preview_names(self.options(), self.shot)
        except StudioError as exc:
            self.preview.setText(f"<span style='color:#ff8a80'>{exc}</span>")
            self.export_button.setEnabled(False)
            return
        self.export_button.setEnabled(self.task is None)
        self.preview.setText(f"{first}  …  {last}" if first else "(nothing to export)")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out_dir.text())
        if folder:
            self.out_dir.setText(folder)

    def start(self) -> Task | None:
        if self.task is not None:
            return None
        options = self.options()
        if not str(options.out_dir):
            self.status.setText("Choose a folder to export into.")
            return None
        shot, folder = self.shot, self.project_folder
        try:  # before anything is written: a missing drawing would stop the export half-way
            check_drawings_present(shot, folder)
        except MissingDrawingsError as exc:
            self.status.setText(f"<span style='color:#ff8a80'>{exc}</span>")
            self.locate_button.setVisible(True)
            return None
        self.locate_button.setVisible(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Exporting…")
        self.export_button.setEnabled(False)
        self.task = self.worker.submit(
            "Export", lambda progress, cancel: export_sequence(folder, shot, options, progress, cancel),
            watch=self._watch)
        return self.task

    def _watch(self, task: Task) -> None:
        task.signals.progress.connect(self._progress)
        task.signals.ended.connect(self._ended)

    def _progress(self, _task: Task, event: ProgressEvent) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        self.status.setText(f"{event.stage} {event.done}/{event.total}" if event.total else event.stage)

    def _ended(self, task: Task) -> None:
        if task.state == "done":
            self._finished(task.result)
        elif task.state == "failed":
            self._failed(task.error)
        else:
            self._cancelled()

    def _finished(self, report: ExportReport) -> None:
        self.task = None
        self.report = report
        self.progress.setValue(self.progress.maximum())
        held = (f"; {len(report.held_in_place)} in-between(s) rejected or not included: the previous drawing is "
                "held in their place" if report.held_in_place else "")
        done = f"Wrote {len(report.files)} files to {report.out_dir} ({report.first} … {report.last}){held}."
        # the warnings matter here: e.g. a moved copy that exported the original project's drawings
        self.status.setText("<br>".join(html.escape(line) for line in [done] + [f"Note: {w}" for w in report.warnings])
                            if report.warnings else done)
        self.cancel_button.setText("Close")
        self.export_button.setEnabled(True)
        log.info("Exported %d files to %s", len(report.files), report.out_dir)
        self.exported.emit(report)

    def _failed(self, message: str) -> None:
        self.task = None
        self.progress.setVisible(False)
        self.status.setText(f"<span style='color:#ff8a80'>{message}</span>")
        self.export_button.setEnabled(True)

    def _cancelled(self) -> None:
        self.task = None
        self.progress.setVisible(False)
        self.status.setText("Export cancelled; nothing was left half-written.")
        self.export_button.setEnabled(True)

    def _cancel_clicked(self) -> None:
        if self.task is not None:
            self.worker.cancel(self.task)
        else:
            self.reject()

    def done(self, result: int) -> None:  # closing cancels a running export and waits for it
        self.worker.shutdown()
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.worker.shutdown()
        super().closeEvent(event)
