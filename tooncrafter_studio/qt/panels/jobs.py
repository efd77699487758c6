"""The job queue: one row per watched task with its stage, step n/N, ETA, a progress bar and Cancel.

A submitter that wants its task shown calls `watch(task)`; the panel listens to that task's own
signals only (generation and import do; an export shows its progress in its own dialog).

Failed jobs keep their row with the message; "Details…" shows the traceback-level details in a
non-modal box, so an error never blocks the review of other takes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.progress import ProgressEvent
from ..widgets.thumbnails import DisplayImage
from ..worker import Task, Worker

COLUMNS = ("Job", "Progress", "ETA", "")


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds <= 0:  # unknown (loading, first step): nothing rather than "0 s"
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class JobsPanel(QWidget):
    preview_ready = Signal(object, object, object)  # task, DisplayImage, ProgressEvent

    def __init__(self, worker: Worker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        header = self.tree.header()
        header.setStretchLastSection(False)
        for column, width in enumerate((170, 110, 44, 74)):
            self.tree.setColumnWidth(column, width)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.preview = QLabel()
        self.preview.setFixedSize(128, 80)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #202024; color: #888")
        self.preview.setText("preview")
        self.preview.setWordWrap(True)
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
        self._failure_titles: dict[int, str] = {}
        self.watched: list[Task] = []

    def row_state(self, task: Task) -> dict[str, str]:
        """What the row shows: stage (or the outcome), step n/N and ETA."""
        item = self.items.get(task.id)
        bar = self.bars.get(task.id)
        if item is None or bar is None:
            return {}
        return {"stage": item.data(1, Qt.ItemDataRole.UserRole) or "", "step": bar.format(), "eta": item.text(2)}

    def _set_stage(self, task: Task, text: str, step: str = "") -> None:
        item = self.items[task.id]
        item.setData(1, Qt.ItemDataRole.UserRole, text)
        item.setToolTip(0, f"{task.label}: {text}")
        item.setToolTip(1, text)
        bar = self.bars[task.id]
        bar.setFormat(f"{text} {step}".strip())
        bar.setToolTip(text)  # the bar covers the cell: a long message (a failure) is read here

    def watch(self, task: Task, failure_title: str = "Generation failed") -> None:
        """Show `task` in a row of its own until it is cleared; a failure's box is titled `failure_title`."""
        self.watched.append(task)
        self._failure_titles[task.id] = failure_title
        task.signals.started.connect(self._started)
        task.signals.progress.connect(self._progress)
        task.signals.ended.connect(self._ended)
        item = QTreeWidgetItem([task.label, "", "", ""])
        self.tree.addTopLevelItem(item)
        bar = QProgressBar()
        bar.setRange(0, 100)
        bar.setValue(0)
        bar.setTextVisible(True)
        bar.setMaximumHeight(18)
        button = QPushButton("Cancel")
        button.setObjectName(f"cancel_{task.id}")
        button.clicked.connect(lambda _checked=False, t=task: self._button(t))
        self.tree.setItemWidget(item, 1, bar)
        self.tree.setItemWidget(item, 3, button)
        item.setToolTip(0, task.label)
        self.items[task.id] = item
        self.bars[task.id] = bar
        self.buttons[task.id] = button
        self._set_stage(task, "queued")
        self.tree.scrollToItem(item)  # the list follows the newest job
        if task.state != "queued":  # ended before it was watched (cancelled at once)
            self._ended(task)

    def _button(self, task: Task) -> None:
        if task.state in ("queued", "running"):
            self.worker.cancel(task)
            if task.id in self.items and task.state == "running":
                self._set_stage(task, "cancelling…")
        elif task.state == "failed":
            self.show_details(task)

    def show_details(self, task: Task) -> QMessageBox:
        title = self._failure_titles.get(task.id, "Failed")
        box = QMessageBox(QMessageBox.Icon.Warning, title, task.error, QMessageBox.StandardButton.Close,
                          self)
        box.setDetailedText(task.details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self._boxes = [b for b in self._boxes if b.isVisible()] + [box]
        return box

    def _started(self, task: Task) -> None:
        if task.id in self.items:
            self._set_stage(task, "starting")
            self.tree.scrollToItem(self.items[task.id])
            self.preview.setPixmap(QPixmap())
            self.preview.setText("no live preview from this engine; the result shows here")

    def _progress(self, task: Task, event: ProgressEvent) -> None:
        item = self.items.get(task.id)
        if item is None:
            return
        # A percentage: an engine's own steps (flow: one more than the in-betweens) are not frames.
        step = f"{round(100 * event.done / event.total)} %" if event.total else ""
        self._set_stage(task, event.stage, step)
        item.setToolTip(1, f"{event.stage} {event.done}/{event.total} {event.message}".strip())
        self.bars[task.id].setToolTip(item.toolTip(1))
        item.setText(2, format_eta(event.eta_s) if event.done > 0 else "")
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
            self.preview_ready.emit(task, image, event)

    def _show_preview(self, image: DisplayImage) -> None:
        scaled = image.image.scaled(self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(QPixmap.fromImage(QImage(scaled)))

    def _ended(self, task: Task) -> None:
        item = self.items.get(task.id)
        if item is None:
            return
        text = f"failed: {task.error}" if task.state == "failed" else task.state
        self._set_stage(task, text)
        bar = self.bars[task.id]
        if task.state == "done":
            bar.setValue(bar.maximum())
            self._show_result(task)
        else:  # cancelled or failed: an empty bar, never one that looks half done
            bar.setRange(0, 1)
            bar.setValue(0)
        item.setText(2, "")
        button = self.buttons[task.id]
        if task.state == "failed":
            button.setText("Details…")
        else:
            button.setEnabled(False)
            button.setText("")

    def _show_result(self, task: Task) -> None:
        """A finished generation shows its middle frame (engines without live previews included)."""
        frames = getattr(task.result, "frames", None)
        if not frames:
            return
        try:
            image = DisplayImage.from_array(frames[len(frames) // 2])
        except Exception:  # an unexpected frame only goes without a picture
            return
        self._show_preview(image)

    def clear_finished(self) -> None:
        for task in list(self.watched):
            if task.state in ("done", "cancelled", "failed"):
                self.watched.remove(task)
                self._failure_titles.pop(task.id, None)
                item = self.items.pop(task.id, None)
                if item is not None:
                    self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
                self.bars.pop(task.id, None)
                self.buttons.pop(task.id, None)
