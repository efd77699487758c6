"""The job queue: one row per generation with its stage, step n/N, ETA, a progress bar and Cancel.

Failed jobs keep their row with the message; "Details…" shows the traceback-level details in a
non-modal box, so an error never blocks the review of other takes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.progress import ProgressEvent
from .thumbnails import DisplayImage
from .worker import Task, Worker

COLUMNS = ("Job", "Stage", "Step", "ETA", "Progress", "")


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class JobsPanel(QWidget):
    preview_ready = Signal(object, object)  # task, DisplayImage

    def __init__(self, worker: Worker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 220)
        self.preview = QLabel()
        self.preview.setFixedSize(160, 100)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #202024; color: #888")
        self.preview.setText("preview")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        side = QVBoxLayout()
        side.addWidget(self.preview)
        side.addWidget(self.clear_button)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tree, 1)
        layout.addLayout(side)
        self.items: dict[int, QTreeWidgetItem] = {}
        self.bars: dict[int, QProgressBar] = {}
        self.buttons: dict[int, QPushButton] = {}
        self._boxes: list[QMessageBox] = []
        worker.task_queued.connect(self._queued)
        worker.task_started.connect(self._started)
        worker.task_progress.connect(self._progress)
        worker.task_finished.connect(lambda task, _result: self._ended(task, "done"))
        worker.task_failed.connect(lambda task, message, _details: self._ended(task, f"failed: {message}"))
        worker.task_cancelled.connect(lambda task: self._ended(task, "cancelled"))

    def row_text(self, task: Task, column: int) -> str:
        item = self.items.get(task.id)
        return item.text(column) if item is not None else ""

    def _queued(self, task: Task) -> None:
        if task.kind != "generate":
            return
        item = QTreeWidgetItem([task.label, "queued", "", "", "", ""])
        self.tree.addTopLevelItem(item)
        bar = QProgressBar()
        bar.setRange(0, 0 if task.state == "running" else 100)
        bar.setValue(0)
        bar.setMaximumHeight(16)
        button = QPushButton("Cancel")
        button.setObjectName(f"cancel_{task.id}")
        button.clicked.connect(lambda _checked=False, t=task: self._button(t))
        self.tree.setItemWidget(item, 4, bar)
        self.tree.setItemWidget(item, 5, button)
        self.items[task.id] = item
        self.bars[task.id] = bar
        self.buttons[task.id] = button

    def _button(self, task: Task) -> None:
        if task.state in ("queued", "running"):
            self.worker.cancel(task)
            item = self.items.get(task.id)
            if item is not None and task.state == "running":
                item.setText(1, "cancelling…")
        elif task.state == "failed":
            self.show_details(task)

    def show_details(self, task: Task) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Warning, "Generation failed", task.error, QMessageBox.StandardButton.Close,
                          self)
        box.setDetailedText(task.details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self._boxes = [b for b in self._boxes if b.isVisible()] + [box]
        return box

    def _started(self, task: Task) -> None:
        item = self.items.get(task.id)
        if item is not None:
            item.setText(1, "starting")
            self.bars[task.id].setRange(0, 0)

    def _progress(self, task: Task, event: ProgressEvent) -> None:
        item = self.items.get(task.id)
        if item is None:
            return
        item.setText(1, event.stage + (f" — {event.message}" if event.message else ""))
        item.setText(2, f"{event.done}/{event.total}" if event.total else str(event.done or ""))
        item.setText(3, format_eta(event.eta_s))
        bar = self.bars[task.id]
        if event.total:
            bar.setRange(0, event.total)
            bar.setValue(min(event.done, event.total))
        if event.preview is not None:
            try:
                image = DisplayImage.from_array(event.preview)
            except Exception:  # a preview in an unexpected shape is only skipped
                return
            self._show_preview(image)
            self.preview_ready.emit(task, image)

    def _show_preview(self, image: DisplayImage) -> None:
        from PySide6.QtGui import QPixmap

        scaled = image.image.scaled(self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(QPixmap.fromImage(QImage(scaled)))

    def _ended(self, task: Task, text: str) -> None:
        item = self.items.get(task.id)
        if item is None:
            return
        item.setText(1, text)
        item.setToolTip(1, text)
        bar = self.bars[task.id]
        if bar.maximum() == 0:
            bar.setRange(0, 100)
        if task.state == "done":
            bar.setValue(bar.maximum())
        item.setText(3, "")
        button = self.buttons[task.id]
        if task.state == "failed":
            button.setText("Details…")
        else:
            button.setEnabled(False)
            button.setText("")

    def clear_finished(self) -> None:
        for task in list(self.worker.tasks):
            if task.kind == "generate" and task.state in ("done", "cancelled", "failed"):
                item = self.items.pop(task.id, None)
                if item is not None:
                    self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
                self.bars.pop(task.id, None)
                self.buttons.pop(task.id, None)
