"""The main window: viewer in the middle, exposure sheet across the bottom, inspector and takes on
the right, jobs and log below. It only composes: the widgets, the session, and the parts that own
the work (ProjectFiles, ViewerController, Editing, StudioDialogs, GenerationController), each given
what it needs, as Pencil2D's editor owns its managers. The work itself lives in the Qt-free layers."""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QToolBar,
    QToolButton,
    QWidget,
)

from ..core.settings import Settings
from ..engines.registry import engine_ids
from ..project.document import ReviewStatus
from .actions import ActionRegistry
from .editing import Editing
from .generation import GenerationController
from .layout_store import fit_on_screen, restore_layout, save_layout
from .panels.inspector import SegmentInspector
from .panels.jobs import JobsPanel
from .panels.log import LogPanel
from .panels.takes import TakesPanel
from .project_files import ProjectFiles, freeze_long_lived_objects
from .prompts import APP_NAME, Prompts
from .session import Session
from .settings_store import SettingsStore
from .studio_dialogs import StudioDialogs
from .viewer_state import ImageLoaders, ViewerController
from .widgets.frames import FrameProvider
from .widgets.problem_bar import ProblemBar
from .widgets.timeline import TimelineView
from .widgets.viewer import Playback, ViewerWidget
from .worker import Worker

log = logging.getLogger(__name__)

UI_SWITCH_INTERVAL_S = 0.0005


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, persist_settings: bool = True) -> None:
        super().__init__()
        self.setObjectName("main_window")
        # The UI thread re-enters Python many times per frame (every overridden paint or event
        # handler). With a job running in the worker, each re-entry may wait for the GIL for up to
        # the switch interval (5 ms by default); a short interval keeps painting smooth.
        sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
        self.store = SettingsStore(settings, persist_settings)
        self.settings = self.store.settings
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self._closing = False

        self.session = Session(self)
        self.prompts = Prompts(self)
        self.images = ImageLoaders(FrameProvider(lambda: self.session.shot, lambda: self.session.folder), self)
        self.worker = Worker(self)
        self.generation = GenerationController(self.session, self.worker, self.settings, self)
        self.playback = Playback(self)
        self.viewer = ViewerWidget()
        self.timeline = TimelineView(self.images.thumbnails)
        self.inspector = SegmentInspector(self.session)
        self.takes = TakesPanel(self.session)
        self.jobs = JobsPanel(self.worker)
        self.log_panel = LogPanel()
        self._lay_out()
        self.files = ProjectFiles(self, self.session, self.worker, self.store, self.prompts, self.images,
                                  self.viewer, self.problem_bar, self.recent_menu)
        self.view = ViewerController(self.session, self.viewer, self.timeline, self.playback, self.images,
                                     self.settings, self.actions, self.takes, self.status_label, self)
        self.editing = Editing(self, self.session, self.timeline, self.view, self.generation, self.prompts)
        self.dialogs = StudioDialogs(self, self.store, self.session, self.generation, self.files, self.view,
                                     self.actions, self.prompts)
        self._connect()
        self._bind_actions()
        self.dialogs.apply()
        self.inspector.set_engines(engine_ids(), {})
        self._update_title()
        if self.store.persist:
            restore_layout(self)  # fits the screen when this screen has no saved geometry
            self.problem_bar.hide()  # a saved layout may have it shown
        else:
            fit_on_screen(self)
        self.generation.probe_engines()

    # ------------------------------------------------------------------ composition
    def _lay_out(self) -> None:
        """Docks, menus, toolbars and the status bar around the viewer."""
        self.setCentralWidget(self.viewer)
        self.docks: dict[str, QDockWidget] = {}
        # The inspector scrolls rather than letting the Takes panel cover its rows on a short screen.
        inspector_scroll = QScrollArea()
        inspector_scroll.setObjectName("inspector_scroll")
        inspector_scroll.setWidgetResizable(True)
        inspector_scroll.setFrameShape(QFrame.Shape.NoFrame)
        inspector_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inspector_scroll.setWidget(self.inspector)
        for name, title, widget, area in (
                ("timeline", "Exposure sheet", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("inspector", "Segment", inspector_scroll, Qt.DockWidgetArea.RightDockWidgetArea),
                ("takes", "Takes", self.takes, Qt.DockWidgetArea.RightDockWidgetArea),
                ("jobs", "Jobs", self.jobs, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea)):
            self._dock(name, title, widget, area)
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
        file_menu = self.actions.menus["File"]
        self.recent_menu = file_menu.addMenu("Open &Recent")
        after_open = file_menu.actions()[file_menu.actions().index(self.actions["open_project"]) + 1]
        file_menu.insertMenu(after_open, self.recent_menu)  # with Open, before the separator
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setIconSize(QSize(16, 16))
        self.actions.build_toolbar(toolbar)
        self.addToolBar(toolbar)
        # shown only when a project could not be opened, or drawings are missing: the reason and a way out
        self.problem_bar = ProblemBar()
        self.addToolBarBreak()
        self.addToolBar(self.problem_bar)
        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
        self.go_button = QToolButton()
        self.go_button.setDefaultAction(self.actions["go_to_new_frames"])
        self.go_button.setVisible(False)
        self.statusBar().addPermanentWidget(self.go_button)
        self.actions["loop"].setChecked(True)

    def _dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[name] = dock

    def _connect(self) -> None:
        """The signals between the parts (each part connects to the widgets it was given itself)."""
        self.session.state_changed.connect(self._update_title)
        self.session.error.connect(self.prompts.show_message)
        self.files.saved.connect(self._update_title)
        self.files.switching.connect(self.generation.cancel_all)
        self.files.switching.connect(self.playback.stop)
        self.files.import_started.connect(lambda task: self.jobs.watch(task, "Import failed"))
        self.view.span_changed.connect(self.inspector.set_span)
        self.view.span_changed.connect(self.takes.set_span)
        self.generation.message.connect(self.prompts.show_message)
        self.generation.job_started.connect(self.jobs.watch)
        self.generation.job_ended.connect(self.view.job_ended)
        self.generation.probes_ready.connect(self._probes_ready)
        self.generation.take_beside.connect(self.takes.offer)
        self.jobs.preview_ready.connect(self.view.show_job_preview)
        self.editing.new_frames_ready.connect(self.go_button.setVisible)
        self.inspector.locate_model.connect(self.dialogs.locate_model)
        self.inspector.setup_engine.connect(self.dialogs.engine_setup_dialog)
        self.log_panel.copy_button.clicked.connect(self.dialogs.copy_diagnostics)

    def _bind_actions(self) -> None:
        files, view, editing, dialogs, takes = self.files, self.view, self.editing, self.dialogs, self.takes
        bindings = {
            "new_project": files.new_project_dialog, "open_project": files.open_project_dialog,
            "new_from_pattern": files.new_from_pattern_dialog,
            "save": files.save, "save_as": files.save_as_dialog, "export": dialogs.export_dialog,
            "import_timing": dialogs.import_timing_dialog,
            "locate_missing": files.locate_missing_drawings,
            "settings": dialogs.settings_dialog, "quit": self.close, "engine_setup": dialogs.engine_setup_dialog,
            "undo": self.session.undo, "redo": self.session.redo,
            "set_key": lambda: editing.set_keys(True), "remove_key": lambda: editing.set_keys(False),
            "exposure_1": lambda: editing.set_exposure(1), "exposure_2": lambda: editing.set_exposure(2),
            "exposure_3": lambda: editing.set_exposure(3), "exposure_n": editing.exposure_dialog,
            "insert_frame": editing.insert_frame, "delete_frames": editing.delete_frames,
            "select_pair": editing.select_pair,
            "timeline_zoom_in": self.timeline.zoom_in, "timeline_zoom_out": self.timeline.zoom_out,
            "play": view.toggle_play, "prev_frame": lambda: view.step(-1), "next_frame": lambda: view.step(1),
            "prev_drawing": lambda: view.step_drawing(-1), "next_drawing": lambda: view.step_drawing(1),
            "first_frame": lambda: view.set_current_frame(1),
            "last_frame": lambda: view.set_current_frame(self.timeline.frame_count),
            "loop": view.loop_toggled, "play_range": view.range_toggled,
            "onion_skin": view.show_current, "light_table": view.show_current, "ab_flip": view.show_current,
            "sketch_overlay": view.show_current,
            "show_rejected": view.show_current, "go_to_new_frames": editing.go_to_new_frames,
            "shortcut_sheet": dialogs.shortcut_sheet,
            "zoom_fit": self.viewer.zoom_fit, "zoom_100": self.viewer.zoom_actual,
            "zoom_in": self.viewer.zoom_in, "zoom_out": self.viewer.zoom_out,
            "show_log": lambda: (self.docks["log"].show(), self.docks["log"].raise_()),
            "generate": editing.generate_selection, "generate_all": editing.generate_all,
            "regenerate": editing.regenerate, "regenerate_rejected": editing.regenerate_rejected,
            "cancel_jobs": self.worker.cancel_all, "free_gpu_memory": self.generation.free_gpu_memory,
            "accept_frame": lambda: editing.review_frame(ReviewStatus.ACCEPTED),
            "reject_frame": lambda: editing.review_frame(ReviewStatus.REJECTED),
            "reset_frame": lambda: editing.review_frame(ReviewStatus.PENDING),
            "accept_take": lambda: editing.review_take(ReviewStatus.ACCEPTED),
            "reject_take": lambda: editing.review_take(ReviewStatus.REJECTED),
            "next_pending": lambda: editing.goto_pending(True), "prev_pending": lambda: editing.goto_pending(False),
            "next_take": lambda: takes.step_active(1), "prev_take": lambda: takes.step_active(-1),
            "copy_diagnostics": dialogs.copy_diagnostics, "about": dialogs.about,
        }
        for command_id, callback in bindings.items():
            self.actions.bind(command_id, callback)

    def _probes_ready(self, probes, capabilities) -> None:
        self.inspector.set_engines(engine_ids(), probes, capabilities)
        freeze_long_lived_objects()  # the engines' imports (torch...) are done: keep them out of GC

    def _update_title(self) -> None:
        project = self.session.project
        if project is None:
            self.setWindowTitle(APP_NAME)
        else:
            self.setWindowTitle(f"{project.shot.name} — {project.folder}[*] — {APP_NAME}")
        self.setWindowModified(self.session.modified)
        a = self.actions
        stack = project.stack if project is not None else None
        a["undo"].setEnabled(stack is not None and stack.can_undo)
        a["redo"].setEnabled(stack is not None and stack.can_redo)
        a["undo"].setText(f"&Undo {stack.undo_label}" if stack and stack.can_undo else "&Undo")
        a["redo"].setText(f"&Redo {stack.redo_label}" if stack and stack.can_redo else "&Redo")

    # ------------------------------------------------------------------ drag and drop, closing
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.files.drop([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._closing and not self.files.confirm_discard():
            event.ignore()
            return
        self._closing = True
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback, cancel jobs and wait for every background thread to finish."""
        self.playback.stop()
        self.files.shutdown()
        self.dialogs.shutdown()
        self.worker.shutdown()
        self.generation.shutdown()
        self.images.shutdown()
        self.log_panel.detach()
        if self.session.project is not None:
            self.session.project.release()
        self.store.save()
        if self.store.persist:
            save_layout(self)
