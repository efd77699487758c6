"""The main window: viewer in the middle, exposure sheet across the bottom, inspector and takes on
the right, jobs and log below. It wires widgets to the session and the actions registry; the
work itself lives in the Qt-free layers (project, pipeline, export)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QToolBar,
    QWidget,
)

from ..core.errors import StudioError
from ..core.paths import resources_dir, user_data_dir
from ..core.settings import Settings, load_settings, save_settings
from ..engines.registry import engine_ids
from ..media import import_source
from ..project.commands import DeleteFrames, InsertFrames, SetExposure, SetFrameStatus, SetKeys, SetTakeStatus
from ..project.document import ReviewStatus
from ..project.project import PROJECT_FILE, Project, find_recovery, new_project, recover
from ..project.resolve import ImageRef, ResolvedFrame, SegmentSpan, cell_at
from .actions import ActionRegistry
from .export_dialog import ExportDialog
from .frames import FrameProvider
from .generation import GenerationController
from .inspector import SegmentInspector
from .jobs_panel import JobsPanel
from .log_panel import LogPanel, diagnostics
from .review import TakesPanel, next_pending, take_frame_at
from .session import Session
from .settings_dialog import SettingsDialog
from .thumbnails import DisplayImage, ImageLoader
from .timeline import COLORS, TimelineView
from .viewer import (
    LIGHT_TABLE_A,
    LIGHT_TABLE_B,
    ONION_AFTER,
    ONION_BEFORE,
    Layer,
    Playback,
    ViewerWidget,
    tinted,
)
from .worker import Task, Worker

log = logging.getLogger(__name__)

APP_NAME = "ToonCrafter Studio"
FIRST_RUN_HINT = ("Welcome! This is the sample shot. Keys are marked ◆ on the timeline: click between two keys, "
                  "press G to generate in-betweens, then A / X to accept or reject. File ▸ New Project imports yours.")
ONION_SIDE = 960  # onion skin and light table layers are drawn from images this size (fast to tint)
UI_SWITCH_INTERVAL_S = 0.0005
PREFETCH_PLAYING = 16
PREFETCH_PAUSED = 3


def _tint(image: DisplayImage, rgb: tuple[int, int, int]) -> DisplayImage:
    return tinted(image, QColor(*rgb))


class MainWindow(QMainWindow):
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
        self._dock("inspector", "Segment", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("takes", "Takes", self.takes, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("jobs", "Jobs", self.jobs, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._dock("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["jobs"], self.docks["log"])
        self.docks["jobs"].raise_()
        self.splitDockWidget(self.docks["inspector"], self.docks["takes"], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["timeline"], self.docks["jobs"]], [170, 150], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["inspector"], self.docks["jobs"]], [330, 520], Qt.Orientation.Horizontal)

        self.actions = ActionRegistry(self, self.settings.shortcuts)
        self.actions.build_menus(self.menuBar())
        self.recent_menu = self.actions.menus["File"].addMenu("Open &Recent")
        self.actions.menus["File"].insertMenu(self.actions["save"], self.recent_menu)
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setIconSize(QSize(16, 16))
        self.actions.build_toolbar(toolbar)
        self.addToolBar(toolbar)
        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
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
        self.playback.frame.connect(self._playback_frame)
        self.playback.state_changed.connect(self._playback_state)
        self.frames.ready.connect(self._image_ready)
        self.tints.ready.connect(self._image_ready)
        self.thumbnails.ready.connect(self._image_ready)
        self.generation.message.connect(self.show_message)
        self.worker.task_finished.connect(self._import_finished)
        self.worker.task_failed.connect(self._import_failed)
        self.generation.probes_ready.connect(self._probes_ready)
        self.generation.take_added.connect(self._take_added)
        self.inspector.locate_model.connect(self.locate_model)
        self.takes.compare_changed.connect(lambda _t: self.show_current())
        self.log_panel.copy_button.clicked.connect(self.copy_diagnostics)
        self.current_frame = 1
        self._wanted: set = set()
        self.inspector.set_engines(engine_ids(), {})
        self._update_recent_menu()
        self._update_title()
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
            "save": self.save, "save_as": self.save_as_dialog, "export": self.export_dialog,
            "settings": self.settings_dialog, "quit": self.close,
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

    # ------------------------------------------------------------------ projects
    def open_project(self, folder: str | Path, offer_recovery: bool = True) -> bool:
        """Open a project folder; offers the recovery copy when autosave left a newer one."""
        if not self._confirm_discard():
            return False
        try:
            recovery = find_recovery(folder) if offer_recovery else None
            if recovery is not None and self.ask(
                    "Recover unsaved work?",
                    f"{APP_NAME} found changes to {Path(folder).name} that were not saved (autosaved "
                    f"{recovery.saved_at}). Recover them? (No keeps the last saved version.)"):
                project = recover(folder)
                self.show_message("Recovered the autosaved changes; save to keep them.")
            else:
                project = Project.open(folder)
        except StudioError as exc:
            self.show_error("Cannot open the project", exc)
            return False
        self._set_project(project)
        return True

    def _set_project(self, project: Project | None) -> None:
        for task in self.worker.active_tasks():
            if task.kind == "generate":
                self.worker.cancel(task)
        self.playback.stop()
        for loader in (self.thumbnails, self.frames, self.tints):
            loader.invalidate()
        self.session.set_project(project)
        if project is not None:
            self.settings.add_recent(str(project.folder))
            self._save_settings()
            self._update_recent_menu()

    def create_project(self, source: str | Path | list, folder: str | Path, detect_holds: bool = False,
                       fps: float | None = None) -> Task | None:
        """Import a source on the worker thread, then make the project folder from it."""
        if not self._confirm_discard():
            return None
        paths = [str(p) for p in source] if isinstance(source, list) else str(source)
        self.show_message("Importing…")

        def run(progress, cancel):
            return import_source(paths, detect_holds=detect_holds, progress=progress, cancel=cancel,
                                 default_fps=fps or 24.0)

        return self.worker.submit("Import", run, "import", payload=Path(folder))

    def _import_finished(self, task, result) -> None:
        if task.kind != "import":
            return
        try:
            project = new_project(task.payload, result.source, result.groups)
        except StudioError as exc:
            self.show_error("Cannot create the project", exc)
            return
        for warning in getattr(result, "warnings", []) or []:
            log.warning("%s", warning)
        self._set_project(project)
        self.show_message(f"New project {project.folder.name}: {project.shot.frame_count} frames. "
                          "Set keys with K, then select a key pair and press G.")

    def _import_failed(self, task, message: str, _details: str) -> None:
        if task.kind == "import":
            self.show_error("Import failed", StudioError(message))

    def new_project_dialog(self) -> None:
        source = QFileDialog.getExistingDirectory(self, "Folder with the image sequence")
        if not source:
            source, _ = QFileDialog.getOpenFileName(
                self, "A frame of the sequence, or a video", "",
                "Images and videos (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.mp4 *.mov *.avi *.mkv *.webm)")
        if not source:
            return
        default = str(Path(source).parent / f"{Path(source).stem}_project")
        folder = QFileDialog.getSaveFileName(self, "New project folder", default)[0]
        if folder:
            self.create_project(source, folder, detect_holds=self.ask("Hold detection",
                                "Detect held drawings (identical frames become one drawing on 2s, 3s…)?"))

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def save(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        try:
            project.save()
        except StudioError as exc:
            self.show_error("Cannot save", exc)
            return False
        self.show_message(f"Saved {project.project_file}")
        self._update_title()
        return True

    def save_as(self, folder: str | Path) -> bool:
        project = self.session.project
        if project is None:
            return False
        try:
            project.save_as(folder)
        except StudioError as exc:
            self.show_error("Cannot save", exc)
            return False
        self.settings.add_recent(str(project.folder))
        self._save_settings()
        self._update_recent_menu()
        self._update_title()
        return True

    def save_as_dialog(self) -> None:
        folder = QFileDialog.getSaveFileName(self, "Save project as (a new folder)")[0]
        if folder:
            self.save_as(folder)

    def autosave(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        try:
            return project.autosave()
        except StudioError as exc:
            self.show_message(f"Autosave failed: {exc}")
            return False

    def _confirm_discard(self) -> bool:
        if not self.session.modified:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        if answer == "discard":
            if self.session.project is not None:
                self.session.project.discard_recovery()
            return True
        return False

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_projects:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_project(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects))

    def _update_title(self) -> None:
        project = self.session.project
        if project is None:
            self.setWindowTitle(APP_NAME)
        else:
            self.setWindowTitle(f"{project.shot.name} — {project.folder}[*] — {APP_NAME}")
        self.setWindowModified(self.session.modified)
        a = self.actions
        a["undo"].setEnabled(project is not None and project.stack.can_undo)
        a["redo"].setEnabled(project is not None and project.stack.can_redo)
        a["undo"].setText(f"&Undo {project.stack.undo_label}" if project and project.stack.can_undo else "&Undo")
        a["redo"].setText(f"&Redo {project.stack.redo_label}" if project and project.stack.can_redo else "&Redo")

    def open_startup(self, project_arg: str | None = None) -> None:
        """Open --project, else the last project, else the sample shot with the first-run hint."""
        candidates = [project_arg] if project_arg else [self.settings.last_project]
        for path in candidates:
            if path and (Path(path) / PROJECT_FILE).exists() and self.open_project(path):
                return
        if project_arg:
            self.show_message(f"{project_arg} is not a project folder; opened the sample shot instead.")
        sample = sample_project_folder()
        if sample is not None and self.open_project(sample):
            self.first_run_hint = FIRST_RUN_HINT
            self.viewer.set_hint(FIRST_RUN_HINT)
            return
        self.viewer.set_hint("No shot open. File ▸ New Project imports an image sequence or a video; "
                             "you can also drop frames on this window.")

    # drag and drop: frames or a video dropped on the window become a new project next to them
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        if len(paths) == 1 and (Path(paths[0]) / PROJECT_FILE).exists():
            self.open_project(paths[0])
            return
        first = Path(paths[0])
        default = first.parent / f"{first.stem if len(paths) == 1 else first.parent.name}_project"
        folder = QFileDialog.getSaveFileName(self, "New project folder", str(default))[0] \
            if QGuiApplication.platformName() != "offscreen" else str(default)
        if folder:
            self.create_project(paths if len(paths) > 1 else paths[0], folder)

    # ------------------------------------------------------------------ document -> widgets
    def _project_opened(self) -> None:
        shot = self.session.shot
        self.viewer.set_hint("")
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

    def _document_changed(self, change) -> None:
        shot = self.session.shot
        if change.shot and shot is not None:
            self.playback.fps = shot.fps
        self._refresh_document()
        self.show_current()

    def _refresh_document(self) -> None:
        frames = self.session.frames()
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

    def current_span(self) -> SegmentSpan | None:
        selected = self.timeline.selected_spans()
        if selected:
            return selected[0]
        return self.session.span_at(self.current_frame)

    def _take_added(self, _take_id: str, key) -> None:
        span = next((s for s in self.session.spans() if s.key == tuple(key)), None)
        if span is not None and self.current_span() is not None and self.current_span().key == span.key:
            stop = next_pending(self.session.frames(), span.start_frame)
            if stop is not None and stop < span.start_frame + span.gap:
                self.set_current_frame(stop)

    # ------------------------------------------------------------------ current frame and viewer
    def set_current_frame(self, frame: int, force: bool = False) -> None:
        count = self.timeline.frame_count
        if not count:
            self.viewer.show_frame(None)
            return
        frame = min(max(1, int(frame)), count)
        if frame == self.current_frame and not force:
            self.show_current()
            return
        self.current_frame = frame
        self.playback.current = frame
        self.timeline.set_current_frame(frame, emit=False)
        if self.timeline.selection[0] == self.timeline.selection[1] and not self.playback.playing:
            self._selection_changed()
        self.show_current()

    def _playback_frame(self, frame: int) -> None:
        self.current_frame = frame
        self.timeline.set_current_frame(frame, emit=False)
        self.show_current()

    def step(self, delta: int) -> None:
        self.playback.stop()
        count = self.timeline.frame_count
        if count:
            self.set_current_frame((self.current_frame - 1 + delta) % count + 1)

    def step_drawing(self, delta: int) -> None:
        """Jump to the start of the next / previous drawing (skips holds)."""
        frames = self.session.frames()
        starts = [f.frame for f in frames if f.new_drawing]
        if not starts:
            return
        if delta > 0:
            after = [s for s in starts if s > self.current_frame]
            self.set_current_frame(after[0] if after else starts[0])
        else:
            before = [s for s in starts if s < self.current_frame]
            self.set_current_frame(before[-1] if before else starts[-1])

    def toggle_play(self) -> None:
        self.playback.fps = self.session.shot.fps if self.session.shot is not None else 24.0
        self.playback.current = self.current_frame
        self.playback.toggle()

    def _loop_toggled(self) -> None:
        self.playback.loop = self.actions["loop"].isChecked()

    def _range_toggled(self) -> None:
        self.playback.range = self.timeline.selection if self.actions["play_range"].isChecked() else None

    def _playback_state(self, playing: bool) -> None:
        self.status_label.setText("▶ playing" if playing else "")
        if not playing:
            self._selection_changed()

    def _image_ready(self, key) -> None:
        if key in self._wanted:  # prefetched frames and thumbnails elsewhere need no repaint
            self.show_current(prefetch=False)

    def _onion_layers(self, frames: list[ResolvedFrame], index: int) -> list[Layer]:
        before = max(0, int(self.settings.onion_skin_before))
        after = max(0, int(self.settings.onion_skin_after))
        nearest = float(self.settings.onion_skin_opacity)
        layers: list[Layer] = []
        current_image = frames[index].image
        for direction, count, color in ((-1, before, ONION_BEFORE), (1, after, ONION_AFTER)):
            seen = [current_image]
            i = index
            opacity = nearest
            while len([s for s in seen if s != current_image]) < count:
                i += direction
                if not 0 <= i < len(frames):
                    break
                image = frames[i].image
                if image in seen:
                    continue
                seen.append(image)
                key = (image, color.getRgb()[:3])
                self._wanted.add(key)
                tinted_image = self.tints.get(key)
                if tinted_image is not None:
                    layers.append(Layer(tinted_image, opacity))
                opacity *= 0.6  # falloff: each drawing further away is fainter
        return layers

    def _key_ref(self, drawing_id: str) -> ImageRef:
        drawing = self.session.shot.drawings[drawing_id]
        return ImageRef("source", drawing.source_id, drawing.source_frame)

    def _compare_ref(self, frame: ResolvedFrame) -> tuple[ImageRef, str] | None:
        """The B side of A/B flip: the compared take's frame here, else the nearest key."""
        shot = self.session.shot
        span = self.session.span_at(frame.frame)
        if span is None:
            return None
        compare = self.takes.compare_take
        if compare and compare in shot.takes:
            take = shot.takes[compare]
            offset = frame.frame - span.start_frame
            candidates = [(tf.offset, i) for i, tf in enumerate(take.frames) if tf.offset <= offset]
            if candidates:
                index = max(candidates)[1]
                return ImageRef("take", compare, index), f"B: take {take.label or take.id} #{index + 1}"
            return self._key_ref(span.start_key), "B: start key"
        if frame.frame - span.start_frame <= span.gap / 2:
            return self._key_ref(span.start_key), "B: start key"
        return self._key_ref(span.end_key), "B: end key"

    def show_current(self, prefetch: bool = True) -> None:
        frames = self.session.frames()
        if not frames:
            self.viewer.show_frame(None)
            return
        index = min(self.current_frame, len(frames)) - 1
        frame = frames[index]
        ref, badge = frame.image, ""
        if self.actions["ab_flip"].isChecked():
            compare = self._compare_ref(frame)
            if compare is not None:
                ref, badge = compare
        self._wanted = {ref}
        if prefetch:  # the frame changed: loads queued for earlier positions are not wanted any more
            self.frames.drop_pending()
        image = self.frames.get(ref, priority=10)
        if image is None:  # show the thumbnail (or keep the last picture) until the frame is decoded
            thumb = self.thumbnails.get(ref, priority=10)
            image = thumb if thumb is not None else self.viewer.image
        layers: list[Layer] = []
        if self.actions["onion_skin"].isChecked() and not badge:
            layers += self._onion_layers(frames, index)
        if self.actions["light_table"].isChecked():
            span = self.session.span_at(frame.frame)
            if span is not None:
                for drawing_id, color in ((span.start_key, LIGHT_TABLE_A), (span.end_key, LIGHT_TABLE_B)):
                    key = (self._key_ref(drawing_id), color.getRgb()[:3])
                    self._wanted.add(key)
                    key_image = self.tints.get(key)
                    if key_image is not None:
                        layers.append(Layer(key_image, 0.55))
                badge = (badge + "  " if badge else "") + "LIGHT TABLE"
        kind = {"key": "key", "drawing": "drawing", "inbetween": "in-between"}.get(frame.kind, frame.kind)
        status = f" {frame.status.value}" if frame.status is not None and frame.take_id else ""
        note = f" — {frame.note}" if frame.note else ""
        caption = f"{frame.frame} / {len(frames)}   {frame.label}   {kind}{status}{note}"
        border = COLORS[frame.status] if frame.status is not None and frame.take_id else None
        self.viewer.show_frame(image, layers, caption, badge, border, moving=prefetch)
        if prefetch:
            self._prefetch(frames, index)

    def _prefetch(self, frames: list[ResolvedFrame], index: int) -> None:
        ahead = PREFETCH_PLAYING if self.playback.playing else PREFETCH_PAUSED
        count = len(frames)
        first, last = self.playback.bounds() if self.playback.playing else (1, count)
        for step in range(1, ahead + 1):
            i = index + step
            if i > last - 1:
                if not self.playback.playing or not self.playback.loop:
                    break
                i = first - 1 + (i - (last - 1) - 1) % (last - first + 1)
            self.frames.get(frames[i].image, priority=5 - min(step, 5))
        if not self.playback.playing:
            for step in range(1, PREFETCH_PAUSED + 1):
                if index - step >= 0:
                    self.frames.get(frames[index - step].image, priority=0)

    # ------------------------------------------------------------------ timeline edits
    def _frames_in_selection(self) -> list[int]:
        first, last = self.timeline.selection
        if first == last:
            return [self.current_frame]
        return list(range(first, last + 1))

    def set_keys(self, is_key: bool) -> None:
        shot = self.session.shot
        if shot is None:
            return
        frames = self._frames_in_selection()
        if len(frames) > 1 and is_key:  # a range: mark every drawing in it
            frames = [f for f in frames if f == frames[0] or cell_at(shot, f)[1] == f]
        try:
            command = SetKeys.at_frames(shot, frames, is_key)
        except StudioError as exc:
            self.show_message(str(exc))
            return
        self.session.push(command)

    def set_exposure(self, length: int) -> None:
        shot = self.session.shot
        if shot is None:
            return
        try:
            command = SetExposure.at_frames(shot, self._frames_in_selection(), length)
        except StudioError as exc:
            self.show_message(str(exc))
            return
        self.session.push(command)

    def exposure_dialog(self) -> None:
        length, ok = QInputDialog.getInt(self, "Exposure", "Hold each selected drawing for (frames):", 2, 1, 1000)
        if ok:
            self.set_exposure(length)

    def insert_frame(self) -> None:
        if self.session.shot is not None:
            self.session.push(InsertFrames(self.current_frame, 1))

    def delete_frames(self) -> None:
        if self.session.shot is None:
            return
        first, last = self.timeline.selection
        if first == last:
            first = last = self.current_frame
        if self.session.push(DeleteFrames(first, last - first + 1)) is not None:
            self.timeline.set_selection(first, first)

    def select_pair(self) -> None:
        span = self.session.span_at(self.current_frame)
        if span is None:
            self.show_message("The current frame is not between two keys.")
            return
        self.timeline.select_span(span)

    # ------------------------------------------------------------------ generation and review
    def generate_selection(self) -> None:
        spans = self.timeline.selected_spans() or ([s] if (s := self.session.span_at(self.current_frame)) else [])
        self.generation.generate(spans)

    def generate_all(self) -> None:
        self.generation.generate(self.session.spans())

    def regenerate(self) -> None:
        span = self.current_span()
        self.generation.generate([span] if span else [], new_seed=True)

    def regenerate_rejected(self) -> None:
        span = self.current_span()
        if span is None:
            self.show_message("Select a key pair first.")
            return
        self.generation.regenerate_rejected(span)

    def _take_frame_here(self) -> tuple[str, int] | None:
        shot = self.session.shot
        if shot is None:
            return None
        return take_frame_at(shot, self.session.span_at(self.current_frame), self.current_frame)

    def review_frame(self, status: ReviewStatus) -> None:
        found = self._take_frame_here()
        if found is None:
            self.show_message("The current frame is not a generated in-between.")
            return
        take_id, index = found
        if self.session.push(SetFrameStatus(take_id, [index], status)) is None:
            return
        if status != ReviewStatus.PENDING:
            span = self.session.span_at(self.current_frame)
            stop = next_pending(self.session.frames(), self.current_frame)
            if stop is not None and span is not None and span.start_frame < stop < span.start_frame + span.gap:
                self.set_current_frame(stop)

    def review_take(self, status: ReviewStatus) -> None:
        span = self.current_span()
        shot = self.session.shot
        segment = shot.segments.get(span.key) if shot is not None and span is not None else None
        if segment is None or segment.active_take is None:
            self.show_message("This key pair has no take to review.")
            return
        self.session.push(SetTakeStatus(segment.active_take, status))

    def goto_pending(self, forward: bool) -> None:
        stop = next_pending(self.session.frames(), self.current_frame, forward)
        if stop is None:
            self.show_message("No pending in-betweens: everything is reviewed.")
            return
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

    def copy_diagnostics(self) -> str:
        project = self.session.project
        text = diagnostics(self.generation.probes, self.settings.model_path,
                           str(project.folder) if project else None)
        QApplication.clipboard().setText(text)
        self.show_message("Diagnostics copied to the clipboard.")
        return text

    def about(self) -> None:
        QMessageBox.about(self, APP_NAME, f"{APP_NAME}: in-betweens for 2D animation, on your own machine.")

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
        for dialog in self.findChildren(ExportDialog):  # an export still running is cancelled too
            dialog.worker.shutdown()
        self.worker.shutdown()
        self.generation.shutdown()
        for loader in (self.thumbnails, self.frames, self.tints):
            loader.shutdown()
        self.log_panel.detach()
        self._save_settings()


def freeze_long_lived_objects() -> None:
    """Move everything alive now (modules, the document) out of the garbage collector's sight.

    With torch and Qt imported a full collection walks millions of objects and can freeze the
    UI for a quarter of a second; what exists at start-up and after opening a shot lives on anyway.
    """
    gc.freeze()


def sample_project_folder() -> Path | None:
    """The sample shot, copied (or imported) into the user's data folder on first use so that it can
    be edited without touching the installed files."""
    target = user_data_dir() / "sample_shot"
    if (target / PROJECT_FILE).exists():
        return target
    package_resources = Path(__file__).resolve().parents[1] / "resources"
    for base in (resources_dir(), package_resources):
        sample = base / "sample_shot"
        if not sample.is_dir():
            continue
        try:
            if (sample / PROJECT_FILE).exists():
                shutil.copytree(sample, target, dirs_exist_ok=True)
                return target
            frames = next((f for f in (sample / "frames", sample) if f.is_dir() and any(f.glob("*.png"))), None)
            if frames is not None:
                imported = import_source(frames, detect_holds=True)
                new_project(target, imported.source, imported.groups, name="sample_shot")
                return target
        except (OSError, StudioError) as exc:
            log.warning("Could not set up the sample shot from %s: %s", sample, exc)
    return None
