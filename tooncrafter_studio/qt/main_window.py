"""The main window: viewer in the middle, exposure sheet across the bottom, inspector and takes on
the right, jobs and log below. It wires widgets to the session and the actions registry; the
work itself lives in the Qt-free layers (project, pipeline, export)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QTextBrowser,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import StudioError
from ..core.settings import Settings, load_settings, save_settings
from ..engines.registry import engine_ids
from ..export.sheet_timing import timeline_notes
from ..project.document import ReviewStatus
from ..project.resolve import SegmentSpan
from .actions import ActionRegistry, about_text, shortcut_sheet_html
from .dialogs.export import ExportDialog
from .dialogs.settings import SettingsDialog
from .dialogs.timing_sheet import TimingSheetDialog
from .editing import EditingMixin
from .generation import GenerationController
from .layout_store import restore_layout, save_layout
from .panels.inspector import SegmentInspector
from .panels.jobs import JobsPanel
from .panels.log import LogPanel, describe_model, diagnostics
from .panels.takes import TakesPanel, next_pending
from .project_files import APP_NAME, ProjectFilesMixin, freeze_long_lived_objects
from .session import Session
from .viewer_state import ViewerMixin
from .widgets.frames import FrameProvider
from .widgets.sketch_row import place_sketch, sketch_marks
from .widgets.thumbnails import DisplayImage, ImageLoader
from .widgets.timeline import TimelineView
from .widgets.viewer import Playback, ViewerWidget, tinted
from .worker import Worker

log = logging.getLogger(__name__)

ONION_SIDE = 960  # onion skin and light table layers are drawn from images this size (fast to tint)
UI_SWITCH_INTERVAL_S = 0.0005


def _tint(image: DisplayImage, rgb: tuple[int, int, int]) -> DisplayImage:
    return tinted(image, QColor(*rgb))


class MainWindow(ProjectFilesMixin, ViewerMixin, EditingMixin, QMainWindow):
    def __init__(self, settings: Settings | None = None, persist_settings: bool = True) -> None:
        super().__init__()
        self.setObjectName("main_window")
        # The UI thread re-enters Python many times per frame (every overridden paint or event
        # handler). With a job running in the worker, each re-entry may wait for the GIL for up to
        # the switch interval (5 ms by default); a short interval keeps painting smooth.
        sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
        self.settings = settings if settings is not None else load_settings()
        self.persist_settings = persist_settings
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._closing = False
        self.first_run_hint = ""

        self.session = Session(self)
        self.provider = FrameProvider(lambda: self.session.shot, lambda: self.session.folder)
        self.thumbnails = ImageLoader(self.provider, max_side=160, threads=1, budget_bytes=96 << 20, parent=self)
        # full frames for the viewer: one decoder per spare core (the UI thread keeps one for itself)
        decoders = max(1, min(4, (os.cpu_count() or 2) - 1))
        self.frames = ImageLoader(self.provider, max_side=0, threads=decoders, budget_bytes=768 << 20, parent=self)
        # onion skin and light table layers: medium-size pictures, tinted off the UI thread
        self.tints = ImageLoader(self.provider, max_side=ONION_SIDE, threads=1, budget_bytes=128 << 20,
                                 parent=self, transform=_tint)
        self.worker = Worker(self)
        self.generation = GenerationController(self.session, self.worker, self.settings, self)
        self.playback = Playback(self)

        self.viewer = ViewerWidget()
        self.setCentralWidget(self.viewer)
        self.timeline = TimelineView(self.thumbnails)
        self.inspector = SegmentInspector(self.session)
        self.takes = TakesPanel(self.session)
        self.jobs = JobsPanel(self.worker)
        self.log_panel = LogPanel()
        self.docks: dict[str, QDockWidget] = {}
        self._dock("timeline", "Exposure sheet", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea)
        # The inspector scrolls rather than letting the Takes panel cover its rows on a short screen.
        inspector_scroll = QScrollArea()
        inspector_scroll.setObjectName("inspector_scroll")
        inspector_scroll.setWidgetResizable(True)
        inspector_scroll.setFrameShape(QFrame.Shape.NoFrame)
        inspector_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inspector_scroll.setWidget(self.inspector)
        self._dock("inspector", "Segment", inspector_scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("takes", "Takes", self.takes, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("jobs", "Jobs", self.jobs, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["jobs"], self.docks["log"])
        self.docks["jobs"].raise_()
        self.splitDockWidget(self.docks["inspector"], self.docks["takes"], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["timeline"], self.docks["jobs"]], [170, 150], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["inspector"], self.docks["jobs"]], [330, 520], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["inspector"], self.docks["takes"]], [520, 140], Qt.Orientation.Vertical)

        self.actions = ActionRegistry(self, self.settings.shortcuts)
        self.actions.build_menus(self.menuBar())
        panels = self.actions.menus["View"].addMenu("&Panels")  # a closed dock comes back from here
        for dock in self.docks.values():
            panels.addAction(dock.toggleViewAction())
        self.recent_menu = self.actions.menus["File"].addMenu("Open &Recent")
        self.actions.menus["File"].insertMenu(self.actions["save"], self.recent_menu)
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setIconSize(QSize(16, 16))
        self.actions.build_toolbar(toolbar)
        self.addToolBar(toolbar)
        # shown only when a project could not be opened at start-up: the reason and a way out
        self.problem_bar = QToolBar("Problem")
        self.problem_bar.setObjectName("problem_bar")
        self.problem_bar.setMovable(False)
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_bar.addWidget(self.problem_label)
        self.open_other_button = QPushButton("Open another project…")
        self.open_other_button.clicked.connect(self.open_project_dialog)
        self.open_other_action = self.problem_bar.addWidget(self.open_other_button)
        self.locate_button = QPushButton("Locate missing drawings…")
        self.locate_button.clicked.connect(lambda: self.locate_missing_drawings())
        self.locate_action = self.problem_bar.addWidget(self.locate_button)
        self.addToolBarBreak()
        self.addToolBar(self.problem_bar)
        self.problem_bar.hide()
        self.last_open_error = ""
        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
        self.last_new_take: str | None = None
        self.go_button = QToolButton()
        self.go_button.setDefaultAction(self.actions["go_to_new_frames"])
        self.go_button.setVisible(False)
        self.statusBar().addPermanentWidget(self.go_button)
        self._bind_actions()
        self.actions["loop"].setChecked(True)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self._apply_settings()

        self.session.project_opened.connect(self._project_opened)
        self.session.document_changed.connect(self._document_changed)
        self.session.state_changed.connect(self._update_title)
        self.session.error.connect(self.show_message)
        self.timeline.current_frame_changed.connect(self.set_current_frame)
        self.timeline.selection_changed.connect(lambda *_: self._selection_changed())
        self.timeline.exposure_dragged.connect(self._exposure_dragged)
        self.timeline.exposure_drag_finished.connect(self._exposure_drag_finished)
        self.timeline.sketch_dropped.connect(self.place_sketch)
        self.playback.frame.connect(self._playback_frame)
        self.playback.state_changed.connect(self._playback_state)
        self.frames.ready.connect(self._image_ready)
        self.frames.failed.connect(self._image_failed)
        self.tints.ready.connect(self._image_ready)
        self.thumbnails.ready.connect(self._image_ready)
        self.generation.message.connect(self.show_message)
        self.job_preview = None  # the latest denoising preview of a running job (viewer_state.JobPreview)
        self.jobs.preview_ready.connect(self._job_preview)
        self.worker.task_finished.connect(self._job_ended)
        self.worker.task_failed.connect(self._job_ended)
        self.worker.task_cancelled.connect(self._job_ended)
        self.generation.probes_ready.connect(self._probes_ready)
        self.generation.take_added.connect(self._take_added)
        self.inspector.locate_model.connect(self.locate_model)
        self.inspector.setup_engine.connect(self.engine_setup_dialog)
        self.takes.compare_changed.connect(lambda _t: self.show_current())
        self.log_panel.copy_button.clicked.connect(self.copy_diagnostics)
        self.current_frame = 1
        self._wanted: set = set()
        self.inspector.set_engines(engine_ids(), {})
        self._update_recent_menu()
        self._update_title()
        if self.persist_settings:
            restore_layout(self)
            self.problem_bar.hide()  # a saved layout may have it shown
        self.generation.probe_engines()

    # ------------------------------------------------------------------ set-up helpers
    def _dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[name] = dock

    def _bind_actions(self) -> None:
        a = self.actions
        bindings = {
            "new_project": self.new_project_dialog, "open_project": self.open_project_dialog,
            "new_from_pattern": self.new_from_pattern_dialog,
            "save": self.save, "save_as": self.save_as_dialog, "export": self.export_dialog,
            "import_timing": self.import_timing_dialog,
            "locate_missing": self.locate_missing_drawings,
            "settings": self.settings_dialog, "quit": self.close, "engine_setup": self.engine_setup_dialog,
            "undo": self.session.undo, "redo": self.session.redo,
            "set_key": lambda: self.set_keys(True), "remove_key": lambda: self.set_keys(False),
            "exposure_1": lambda: self.set_exposure(1), "exposure_2": lambda: self.set_exposure(2),
            "exposure_3": lambda: self.set_exposure(3), "exposure_n": self.exposure_dialog,
            "insert_frame": self.insert_frame, "delete_frames": self.delete_frames,
            "select_pair": self.select_pair,
            "timeline_zoom_in": self.timeline.zoom_in, "timeline_zoom_out": self.timeline.zoom_out,
            "play": self.toggle_play, "prev_frame": lambda: self.step(-1), "next_frame": lambda: self.step(1),
            "prev_drawing": lambda: self.step_drawing(-1), "next_drawing": lambda: self.step_drawing(1),
            "first_frame": lambda: self.set_current_frame(1),
            "last_frame": lambda: self.set_current_frame(self.timeline.frame_count),
            "loop": self._loop_toggled, "play_range": self._range_toggled,
            "onion_skin": self.show_current, "light_table": self.show_current, "ab_flip": self.show_current,
            "sketch_overlay": self.show_current,
            "show_rejected": self.show_current, "go_to_new_frames": self.go_to_new_frames,
            "shortcut_sheet": self.shortcut_sheet,
            "zoom_fit": self.viewer.zoom_fit, "zoom_100": self.viewer.zoom_actual,
            "zoom_in": self.viewer.zoom_in, "zoom_out": self.viewer.zoom_out,
            "show_log": lambda: (self.docks["log"].show(), self.docks["log"].raise_()),
            "generate": self.generate_selection, "generate_all": self.generate_all,
            "regenerate": self.regenerate, "regenerate_rejected": self.regenerate_rejected,
            "cancel_jobs": self.worker.cancel_all,
            "accept_frame": lambda: self.review_frame(ReviewStatus.ACCEPTED),
            "reject_frame": lambda: self.review_frame(ReviewStatus.REJECTED),
            "reset_frame": lambda: self.review_frame(ReviewStatus.PENDING),
            "accept_take": lambda: self.review_take(ReviewStatus.ACCEPTED),
            "reject_take": lambda: self.review_take(ReviewStatus.REJECTED),
            "next_pending": lambda: self.goto_pending(True), "prev_pending": lambda: self.goto_pending(False),
            "next_take": lambda: self.takes.step_active(1), "prev_take": lambda: self.takes.step_active(-1),
            "copy_diagnostics": self.copy_diagnostics, "about": self.about,
        }
        for command_id, callback in bindings.items():
            a.bind(command_id, callback)

    def _apply_settings(self) -> None:
        interval = int(self.settings.autosave_interval_s)
        if interval > 0:
            self.autosave_timer.start(interval * 1000)
        else:
            self.autosave_timer.stop()
        self.actions.apply_shortcuts(self.settings.shortcuts)

    def _save_settings(self) -> None:
        if self.persist_settings:
            try:
                save_settings(self.settings)
            except StudioError as exc:
                log.warning("Settings not saved: %s", exc)

    # ------------------------------------------------------------------ messages and dialogs
    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)
        log.info("%s", text)

    def ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel' for unsaved changes (tests replace this method)."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self, APP_NAME, "The shot has unsaved changes. Save them?", buttons)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def show_error(self, title: str, error: BaseException) -> None:
        text = str(error) if isinstance(error, StudioError) else f"{type(error).__name__}: {error}"
        log.warning("%s: %s", title, text)
        self.show_message(text)
        if QGuiApplication.platformName() != "offscreen":
            QMessageBox.warning(self, title, text)

    # ------------------------------------------------------------------ document -> widgets
    def _project_opened(self) -> None:
        shot = self.session.shot
        self.job_preview = None  # a job still running for the previous project shows nothing here
        self.viewer.set_hint("")
        self.problem_bar.hide()
        self.first_run_hint = ""
        self.current_frame = 1
        self.timeline.current_frame = 1
        self.timeline.selection = (1, 1)
        self.playback.fps = shot.fps if shot is not None else 24.0
        self._refresh_document()
        freeze_long_lived_objects()
        self.viewer.zoom_fit()
        spans = self.session.spans()
        if spans:
            self.timeline.select_span(spans[0])
        self.set_current_frame(1, force=True)
        self.report_missing_drawings()

    def _document_changed(self, change) -> None:
        shot = self.session.shot
        if change.shot and shot is not None:
            self.playback.fps = shot.fps
        if change.sources:
            for loader in (self.thumbnails, self.frames, self.tints):
                loader.invalidate()
            self.report_missing_drawings()  # relinking (or undoing it) changes which drawings are missing
        self._refresh_document()
        self.show_current()

    def _refresh_document(self) -> None:
        frames = self.session.frames()
        self.timeline.sketch_frames = set(sketch_marks(self.session.shot, self.session.spans()))
        notes = timeline_notes(self.session.shot)
        self.timeline.set_sheet_notes(notes.marks, notes.rows)
        self.timeline.set_frames(frames, self.session.spans())
        self.playback.frame_count = max(1, len(frames))
        if self.current_frame > len(frames):
            self.current_frame = max(1, len(frames))
        self._selection_changed(force=True)
        self._update_title()

    def _selection_changed(self, force: bool = False) -> None:
        span = self.current_span()
        if force or span != self.inspector.span or span != self.takes.span:
            self.inspector.set_span(span)
            self.takes.set_span(span)
        if self.actions["play_range"].isChecked():
            self.playback.range = self.timeline.selection

    def place_sketch(self, frame: int, path: str) -> None:
        """An image dropped (or imported) on an in-between cell becomes that cell's sketch (undoable)."""
        problem = place_sketch(self.session, frame, path)
        if problem:
            self.statusBar().showMessage(problem, 8000)
        else:
            self.statusBar().showMessage(f"Sketch {Path(path).name} placed on frame {frame}", 5000)

    def current_span(self) -> SegmentSpan | None:
        selected = self.timeline.selected_spans()
        if selected:
            return selected[0]
        return self.session.span_at(self.current_frame)

    def _take_added(self, take_id: str, _key) -> None:
        """A take arrived: the playhead stays where the user is; Go to New Frames (Ctrl+J) jumps."""
        self.last_new_take = take_id
        self.go_button.setVisible(self.new_frames_stop() is not None)
        if self.first_run_hint and self.viewer.hint == self.first_run_hint:
            # the welcome's steps are done and it covers the drawing; the status bar says what is next
            self.first_run_hint = ""
            self.viewer.set_hint("")

    def new_frames_stop(self) -> int | None:
        """The first frame to review of the latest take (or its first frame), while it is active."""
        shot = self.session.shot
        take = shot.takes.get(self.last_new_take or "") if shot is not None else None
        if take is None:
            return None
        span = next((s for s in self.session.spans() if s.key == (take.start_key, take.end_key)), None)
        segment = shot.segments.get((take.start_key, take.end_key))
        if span is None or segment is None or segment.active_take != take.id or not take.frames:
            return None
        stop = next_pending(self.session.frames(), span.start_frame)
        if stop is not None and stop < span.start_frame + span.gap:
            return stop
        return span.start_frame + min(tf.offset for tf in take.frames)

    def go_to_new_frames(self) -> None:
        stop = self.new_frames_stop()
        if stop is None:
            self.show_message("No new take to go to.")
            return
        self.go_button.setVisible(False)
        self.set_current_frame(stop)

    # ------------------------------------------------------------------ engines, settings, export
    def _probes_ready(self, probes, capabilities) -> None:
        self.inspector.set_engines(engine_ids(), probes, capabilities)
        freeze_long_lived_objects()  # the engines' imports (torch...) are done: keep them out of GC

    def locate_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Locate the ToonCrafter model", "",
                                              "Checkpoints (*.ckpt *.safetensors *.pt);;All files (*)")
        if path:
            self.set_model_path(path)

    def set_model_path(self, path: str | None) -> None:
        self.settings.model_path = path
        self._save_settings()
        self.generation.settings_changed(self.settings)

    def engine_setup_dialog(self):
        from .dialogs.engine_setup import EngineSetupDialog

        dialog = EngineSetupDialog(self, self.settings.model_path)
        dialog.changed.connect(lambda: self.generation.settings_changed(self.settings))  # probe again
        dialog.open()
        return dialog

    def settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, list(self.generation.probes) or ["flow"], self)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_settings()))
        dialog.open()
        return dialog

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self._save_settings()
        self._apply_settings()
        self.generation.settings_changed(settings)
        self.show_current()

    def export_dialog(self) -> ExportDialog | None:
        project = self.session.project
        if project is None:
            self.show_message("Open a shot first.")
            return None
        dialog = ExportDialog(project.shot, project.folder, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self._export_dialog = dialog
        return dialog

    def import_timing_dialog(self, path: str = "") -> TimingSheetDialog | None:
        """File ▸ Import Timing Sheet…: the plan the dialog previews is applied as one undoable command."""
        if self.session.project is None:
            self.show_message("Open a shot first.")
            return None
        dialog = TimingSheetDialog(self.session.project.shot, path, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: dialog.plan is not None and self.session.push(dialog.plan.command()))
        dialog.open()
        return dialog

    def copy_diagnostics(self) -> str:
        project = self.session.project
        model = describe_model(self.generation.model_identity, self.generation.model_identity_known)
        text = diagnostics(self.generation.probes, self.settings.model_path,
                           str(project.folder) if project else None, model)
        QApplication.clipboard().setText(text)
        self.show_message("Diagnostics copied to the clipboard.")
        return text

    def about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", about_text())

    def shortcut_sheet(self) -> QDialog:
        """Every command and its keys, generated from the action registry (so it is never stale)."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        dialog.setObjectName("shortcut_sheet")
        text = QTextBrowser(dialog)
        text.setHtml(shortcut_sheet_html(self.actions))
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        dialog.resize(520, 640)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._closing and not self._confirm_discard():
            event.ignore()
            return
        self._closing = True
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback, cancel jobs and wait for every background thread to finish."""
        self.playback.stop()
        self.autosave_timer.stop()
        if getattr(self, "farm_timer", None) is not None:
            self.farm_timer.stop()
        for dialog in self.findChildren(ExportDialog):  # an export still running is cancelled too
            dialog.worker.shutdown()
        self.worker.shutdown()
        self.generation.shutdown()
        for loader in (self.thumbnails, self.frames, self.tints):
            loader.shutdown()
        self.log_panel.detach()
        if self.session.project is not None:
            self.session.project.release()
        self._save_settings()
        if self.persist_settings:
            save_layout(self)
