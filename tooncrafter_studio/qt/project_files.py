"""Opening, creating, saving and recovering projects, start-up, autosave and drag-and-drop: the part of
the window that owns the project files (built by MainWindow with what it needs)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from ..core.errors import StudioError
from ..core.paths import resources_dir, user_data_dir, user_log_dir
from ..media import import_source
from ..project.farm_takes import FarmTakeWatcher
from ..project.moved_copy import original_location_notes
from ..project.orphan_takes import RestoreTakes, find_orphan_takes
from ..project.project import PROJECT_FILE, Project, find_recovery, new_project, recover
from ..project.relink import RelinkSources, missing_drawings, relink_plan
from .dialogs.pattern import PatternDialog
from .prompts import APP_NAME, Prompts
from .session import Session
from .settings_store import SettingsStore
from .viewer_state import ImageLoaders
from .widgets.problem_bar import ProblemBar
from .widgets.viewer import ViewerWidget
from .worker import Task, Worker

log = logging.getLogger(__name__)

FARM_POLL_MS = 2000  # how often the open project's file is checked for takes farm tasks registered
OWNER_NAME = "the ToonCrafter Studio app"  # how another program names us when the project is ours
FIRST_RUN_HINT = ("Welcome! This is the sample shot. Keys are marked ◆ on the timeline: click between two keys, "
                  "press G to generate in-betweens, then A / X to accept or reject. File ▸ New Project imports yours; "
                  "Generate ▸ ToonCrafter Engine… sets up the generative engine.")


def local_time(iso: str) -> str:
    """An ISO-8601 UTC time stamp in the user's local time ("2026-12-03 10:42"); as given if unreadable."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return iso


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


class ProjectFiles(QObject):
    """The open project's files: open, create, save, recover, relink, autosave, recent projects."""

    saved = Signal()  # the project was written (its title may change: save as)
    import_started = Signal(object)  # task: an import was queued (the jobs panel watches it)
    switching = Signal()  # another project is about to open: stop what belongs to this one

    def __init__(self, window: QWidget, session: Session, worker: Worker, store: SettingsStore, prompts: Prompts, images: ImageLoaders, viewer: ViewerWidget,
                 problem_bar: ProblemBar, recent_menu: QMenu) -> None:
        super().__init__(window)
        self.window = window  # the parent of file dialogs
        self.session = session
        self.worker = worker
        self.store = store
        self.settings = store.settings
        self.prompts = prompts
        self.images = images
        self.viewer = viewer
        self.problem_bar = problem_bar
        self.recent_menu = recent_menu
        self.last_open_error = ""
        self.first_run_hint = ""
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.farm_timer = QTimer(self)  # takes that farm tasks register while the project is open
        self.farm_timer.timeout.connect(self.poll_farm_takes)
        self.farm_takes: FarmTakeWatcher | None = None
        problem_bar.open_other_button.clicked.connect(self.open_project_dialog)
        problem_bar.locate_button.clicked.connect(lambda: self.locate_missing_drawings())
        viewer.hint_dismissed.connect(self.dismiss_welcome)
        session.project_opened.connect(self._project_opened)
        session.document_changed.connect(self._document_changed)
        self.update_recent_menu()

    def shutdown(self) -> None:
        self.autosave_timer.stop()
        self.farm_timer.stop()

    def set_autosave_interval(self, seconds: float) -> None:
        if int(seconds) > 0:
            self.autosave_timer.start(int(seconds) * 1000)
        else:
            self.autosave_timer.stop()

    def _project_opened(self) -> None:
        self.viewer.set_hint("")
        self.problem_bar.hide()
        self.first_run_hint = ""
        freeze_long_lived_objects()
        self.report_missing_drawings()

    def dismiss_welcome(self) -> None:
        """The first-run banner goes once the user has started (their first edit, take or review) or
        closed it: it never stays over the work for a whole session."""
        if self.first_run_hint:
            self.first_run_hint = ""
            if self.viewer.hint:
                self.viewer.set_hint("")

    def _document_changed(self, change) -> None:
        self.dismiss_welcome()
        if change.sources:  # relinking (or undoing it) changes which drawings are missing
            self.images.invalidate()
            self.report_missing_drawings()

    # ------------------------------------------------------------------ projects
    def open_project(self, folder: str | Path, offer_recovery: bool = True) -> bool:
        """Open a project folder; offers the recovery copy when autosave left a newer one."""
        if not self.confirm_discard():
            return False
        damaged: list[str] = []
        try:
            recovery = find_recovery(folder, damaged.append) if offer_recovery else None
            if recovery is not None and self.prompts.ask(
                    "Recover unsaved work?",
                    f"{APP_NAME} found changes to {Path(folder).name} that were not saved (autosaved "
                    f"{local_time(recovery.saved_at)}). Recover them? (No keeps the last saved version.)"):
                project = recover(folder)
                self.prompts.show_message("Recovered the autosaved changes; save to keep them.")
            else:
                project = Project.open(folder)
            # a second window or an editing command is told, not raced; farm tasks may add takes meanwhile
            project.claim(OWNER_NAME, admit_shared=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file must never take the app down
            if not isinstance(exc, StudioError):
                log.error("Opening %s failed unexpectedly", folder, exc_info=True)
                exc = StudioError(f"{folder} cannot be opened ({type(exc).__name__}: {exc}); this is a bug, "
                                  f"the details are in {user_log_dir() / 'studio.log'}.")
            self.last_open_error = str(exc)
            self.prompts.show_error("Cannot open the project", exc)
            return False
        self.last_open_error = ""
        self.set_project(project)
        for text in damaged:
            self.prompts.show_message(text, 15000)
            log.warning("%s", text)
        self.offer_unlisted_takes()
        return True

    def offer_unlisted_takes(self) -> int:
        """Offer back complete take folders the project does not list (the app was killed before it
        recorded them; see project/orphan_takes.py). Returns how many were added (one undo step)."""
        project = self.session.project
        takes = find_orphan_takes(project) if project is not None else []
        if not takes:
            return 0
        count = len(takes)
        if not self.prompts.ask("Add back generated takes?",
                                f"{count} generated take{'s' if count != 1 else ''} in {project.folder / 'takes'} "
                                f"{'are' if count != 1 else 'is'} not in the project (the app probably closed "
                                "before recording them). Add them back? (No leaves the folders where they are.)"):
            return 0
        self.session.push(RestoreTakes(takes))
        self.prompts.show_message(f"Added back {count} take{'s' if count != 1 else ''}; save to keep "
                                  f"{'them' if count != 1 else 'it'}.")
        return count

    def show_open_problem(self, text: str) -> None:
        """No shot open because one could not be: say why, and offer to open another."""
        self.viewer.set_hint(f"{text}\n\nFile ▸ Open Project… opens another project.")
        self.problem_bar.show_open_problem(text)

    def report_missing_drawings(self) -> int:
        """Say how many drawings are missing (the bar offers to locate them); hide the bar when none are."""
        project = self.session.project
        missing = missing_drawings(project.shot, project.folder) if project is not None else []
        if not missing:
            notes = original_location_notes(project.shot if project is not None else None)
            if notes:  # a moved copy reading the original's drawings: visible, with a way to relink
                text = notes[0][0].upper() + notes[0][1:] + "."
                self.problem_bar.show_missing(text)
                self.prompts.show_message(text)
            else:
                self.problem_bar.hide()
            return 0
        count = len(missing)
        text = (f"{count} drawing{'s are' if count != 1 else ' is'} missing: the files are not where the project "
                "says. Locate them, or they show as blank frames.")
        self.problem_bar.show_missing(text)
        self.prompts.show_message(text)
        return count

    def locate_missing_drawings(self, folder: str | Path | None = None) -> int:
        """Relink the missing drawings from a folder (asked for when not given): one undoable step.
        Returns how many drawings were found."""
        project = self.session.project
        if project is None:
            self.prompts.show_message("Open a shot first.")
            return 0
        before = len(missing_drawings(project.shot, project.folder))
        if not before:
            self.prompts.show_message("No drawings are missing.")
            return 0
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.window, "Folder that holds the missing drawings")
            if not folder:
                return 0
        try:
            plan = relink_plan(project.shot, project.folder, folder)
        except StudioError as exc:
            self.prompts.show_error("Cannot locate the drawings", exc)
            return 0
        for note in plan.notes:
            log.warning("%s", note)
        if not plan.paths:
            self.prompts.show_error("Drawings not found", StudioError(
                f"None of the {before} missing drawings is in {folder} (same file names and content)."))
            return 0
        if self.session.push(RelinkSources(plan.paths)) is None:  # the change refreshes pictures and the bar
            return 0
        found = before - len(missing_drawings(project.shot, project.folder))
        self.prompts.show_message(f"Found {found} of {before} missing drawings in {folder}.")
        return found

    def set_project(self, project: Project | None) -> None:
        previous = self.session.project
        if previous is not None and previous is not project:
            previous.release()
        self.switching.emit()  # the generation jobs of the previous project are cancelled, playback stops
        self.images.invalidate()
        self.session.set_project(project)
        self._watch_farm_takes(project)
        if project is not None:
            self.settings.add_recent(str(project.folder))
            self.store.save()
            self.update_recent_menu()

    def _watch_farm_takes(self, project: Project | None) -> None:
        """Merge takes that farm tasks register while the project is open (project/farm_takes.py)."""
        self.farm_takes = FarmTakeWatcher(project) if project is not None else None
        if project is not None:
            self.farm_timer.start(FARM_POLL_MS)
        else:
            self.farm_timer.stop()

    def poll_farm_takes(self) -> int:
        """One look at the project file; says "N new takes from the farm". Returns how many arrived."""
        watcher = self.farm_takes
        if watcher is None or watcher.project is not self.session.project:
            return 0
        arrived = watcher.poll()
        if arrived:
            self.prompts.show_message(arrived.message, 15000)
        return len(arrived.takes)

    def create_project(self, source: str | Path | list, folder: str | Path, detect_holds: bool = False,
                       fps: float | None = None) -> Task | None:
        """Import a source on the worker thread, then make the project folder from it."""
        if not self.confirm_discard():
            return None
        paths = [str(p) for p in source] if isinstance(source, list) else str(source)
        self.prompts.show_message("Importing…")

        def run(progress, cancel):
            return import_source(paths, detect_holds=detect_holds, progress=progress, cancel=cancel,
                                 default_fps=fps or 24.0)

        return self.worker.submit("Import", run, payload=Path(folder), on_done=self._import_done,
                                  watch=self.watch)

    def watch(self, task: Task) -> None:
        """Where an import shows its progress (the window connects the jobs panel here)."""
        self.import_started.emit(task)

    def _import_done(self, task) -> None:
        if task.state == "failed":
            self.prompts.show_error("Import failed", StudioError(task.error))
        if task.state != "done":
            return
        result = task.result
        try:
            project = new_project(task.payload, result.source, result.groups)
            project.claim(OWNER_NAME, admit_shared=True)
        except StudioError as exc:
            self.prompts.show_error("Cannot create the project", exc)
            return
        for warning in getattr(result, "warnings", []) or []:
            log.warning("%s", warning)
        self.set_project(project)
        self.prompts.show_message(f"New project {project.folder.name}: {project.shot.frame_count} frames. "
                          "Set keys with K, then select a key pair and press G.")

    def new_project_dialog(self) -> None:
        source = QFileDialog.getExistingDirectory(self.window, "Folder with the image sequence")
        if not source:
            source, _ = QFileDialog.getOpenFileName(
                self.window, "A frame of the sequence, or a video", "",
                "Images and videos (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.mp4 *.mov *.avi *.mkv *.webm)")
        if not source:
            return
        default = str(Path(source).parent / f"{Path(source).stem}_project")
        folder = QFileDialog.getSaveFileName(self.window, "New project folder", default)[0]
        if folder:
            self.create_project(source, folder, detect_holds=self.prompts.ask("Hold detection",
                                "Detect held drawings (identical frames become one drawing on 2s, 3s…)?"))

    def new_from_pattern_dialog(self) -> PatternDialog:
        """Pattern (or Browse to a frame), hold detection and project folder, in one dialog."""
        dialog = PatternDialog(self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def create() -> None:
            pattern, folder, holds = dialog.values()
            if pattern and folder:
                self.create_project(pattern, folder, detect_holds=holds)

        dialog.accepted.connect(create)
        dialog.open()
        return dialog

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open project folder")
        if folder:
            self.open_project(folder)

    def save(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        watcher = self.farm_takes
        try:
            if watcher is not None and watcher.project is project:
                arrived = watcher.save()  # takes the farm registered meanwhile are merged, never overwritten
            else:
                arrived = None
                project.save()
        except StudioError as exc:
            self.prompts.show_error("Cannot save", exc)
            return False
        self.prompts.show_message(f"Saved {project.project_file}" + (f" ({arrived.message})" if arrived else ""))
        self.saved.emit()
        return True

    def save_as(self, folder: str | Path) -> bool:
        project = self.session.project
        if project is None:
            return False
        try:
            project.save_as(folder)
        except StudioError as exc:
            self.prompts.show_error("Cannot save", exc)
            return False
        try:
            project.claim(OWNER_NAME, admit_shared=True)
        except StudioError as exc:
            self.prompts.show_message(str(exc))
        self._watch_farm_takes(project)  # the new folder's file from now on
        self.settings.add_recent(str(project.folder))
        self.store.save()
        self.update_recent_menu()
        self.saved.emit()
        return True

    def save_as_dialog(self) -> None:
        folder = QFileDialog.getSaveFileName(self.window, "Save project as (a new folder)")[0]
        if folder:
            self.save_as(folder)

    def autosave(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        try:
            return project.autosave()
        except StudioError as exc:
            self.prompts.show_message(f"Autosave failed: {exc}")
            return False

    def confirm_discard(self) -> bool:
        if not self.session.modified:
            return True
        answer = self.prompts.ask_unsaved()
        if answer == "save":
            return self.save()
        if answer == "discard":
            if self.session.project is not None:
                self.session.project.discard_recovery()
            return True
        return False

    def update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_projects:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_project(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects))

    def open_startup(self, project_arg: str | None = None) -> None:
        """Open --project, else the last project, else the sample shot with the first-run hint."""
        if project_arg and Path(project_arg).name == PROJECT_FILE:  # the file itself was named
            project_arg = str(Path(project_arg).parent)
        candidates = [project_arg] if project_arg else [self.settings.last_project]
        for path in candidates:
            if path and os.path.lexists(Path(path) / PROJECT_FILE):
                if self.open_project(path):
                    return
                # a damaged project: open nothing rather than something else, and say why
                self.show_open_problem(self.last_open_error or f"{path} cannot be opened.")
                return
        if project_arg:
            self.prompts.show_message(f"{project_arg} is not a project folder; opened the sample shot instead.")
        sample = sample_project_folder()
        if sample is not None and self.open_project(sample):
            self.first_run_hint = FIRST_RUN_HINT
            self.viewer.set_hint(FIRST_RUN_HINT)
            return
        self.viewer.set_hint("No shot open. File ▸ New Project imports an image sequence or a video; "
                             "you can also drop frames on this window.")

    def drop(self, paths: list[str]) -> None:
        """Files dropped on the window: a project folder opens; frames or a video become a new project
        next to them."""
        if not paths:
            return
        if len(paths) == 1 and (Path(paths[0]) / PROJECT_FILE).exists():
            self.open_project(paths[0])
            return
        first = Path(paths[0])
        default = first.parent / f"{first.stem if len(paths) == 1 else first.parent.name}_project"
        folder = QFileDialog.getSaveFileName(self.window, "New project folder", str(default))[0] \
            if QGuiApplication.platformName() != "offscreen" else str(default)
        if folder:
            self.create_project(paths if len(paths) > 1 else paths[0], folder)
