"""Opening, creating, saving and recovering projects, start-up and drag-and-drop (MainWindow part)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QFileDialog

from ..core.errors import StudioError
from ..core.paths import resources_dir, user_data_dir, user_log_dir
from ..media import import_source
from ..project.farm_takes import FarmTakeWatcher
from ..project.moved_copy import original_location_notes
from ..project.orphan_takes import RestoreTakes, find_orphan_takes
from ..project.project import PROJECT_FILE, Project, find_recovery, new_project, recover
from ..project.relink import RelinkSources, missing_drawings, relink_plan
from .dialogs.pattern import PatternDialog
from .worker import Task

log = logging.getLogger(__name__)

APP_NAME = "ToonCrafter Studio"
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


class ProjectFilesMixin:
    """Part of MainWindow (a mixin): uses the window's session, widgets, loaders and actions."""

    # ------------------------------------------------------------------ projects
    def open_project(self, folder: str | Path, offer_recovery: bool = True) -> bool:
        """Open a project folder; offers the recovery copy when autosave left a newer one."""
        if not self._confirm_discard():
            return False
        damaged: list[str] = []
        try:
            recovery = find_recovery(folder, damaged.append) if offer_recovery else None
            if recovery is not None and self.ask(
                    "Recover unsaved work?",
                    f"{APP_NAME} found changes to {Path(folder).name} that were not saved (autosaved "
                    f"{local_time(recovery.saved_at)}). Recover them? (No keeps the last saved version.)"):
                project = recover(folder)
                self.show_message("Recovered the autosaved changes; save to keep them.")
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
            self.show_error("Cannot open the project", exc)
            return False
        self.last_open_error = ""
        self._set_project(project)
        for text in damaged:
            self.show_message(text, 15000)
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
        if not self.ask("Add back generated takes?",
                        f"{count} generated take{'s' if count != 1 else ''} in {project.folder / 'takes'} "
                        f"{'are' if count != 1 else 'is'} not in the project (the app probably closed before "
                        "recording them). Add them back? (No leaves the folders where they are.)"):
            return 0
        self.session.push(RestoreTakes(takes))
        self.show_message(f"Added back {count} take{'s' if count != 1 else ''}; save to keep "
                          f"{'them' if count != 1 else 'it'}.")
        return count

    def show_open_problem(self, text: str) -> None:
        """No shot open because one could not be: say why, and offer to open another."""
        self.viewer.set_hint(f"{text}\n\nFile ▸ Open Project… opens another project.")
        self.problem_label.setText(text)
        self.open_other_action.setVisible(True)
        self.locate_action.setVisible(False)
        self.problem_bar.show()

    def report_missing_drawings(self) -> int:
        """Say how many drawings are missing (the bar offers to locate them); hide the bar when none are."""
        project = self.session.project
        missing = missing_drawings(project.shot, project.folder) if project is not None else []
        if not missing:
            notes = original_location_notes(project.shot if project is not None else None)
            if notes:  # a moved copy reading the original's drawings: visible, with a way to relink
                text = notes[0][0].upper() + notes[0][1:] + "."
                self.problem_label.setText(text)
                self.open_other_action.setVisible(False)
                self.locate_action.setVisible(True)
                self.problem_bar.show()
                self.show_message(text)
            else:
                self.problem_bar.hide()
            return 0
        count = len(missing)
        text = (f"{count} drawing{'s are' if count != 1 else ' is'} missing: the files are not where the project "
                "says. Locate them, or they show as blank frames.")
        self.problem_label.setText(text)
        self.open_other_action.setVisible(False)
        self.locate_action.setVisible(True)
        self.problem_bar.show()
        self.show_message(text)
        return count

    def locate_missing_drawings(self, folder: str | Path | None = None) -> int:
        """Relink the missing drawings from a folder (asked for when not given): one undoable step.
        Returns how many drawings were found."""
        project = self.session.project
        if project is None:
            self.show_message("Open a shot first.")
            return 0
        before = len(missing_drawings(project.shot, project.folder))
        if not before:
            self.show_message("No drawings are missing.")
            return 0
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder that holds the missing drawings")
            if not folder:
                return 0
        try:
            plan = relink_plan(project.shot, project.folder, folder)
        except StudioError as exc:
            self.show_error("Cannot locate the drawings", exc)
            return 0
        for note in plan.notes:
            log.warning("%s", note)
        if not plan.paths:
            self.show_error("Drawings not found", StudioError(
                f"None of the {before} missing drawings is in {folder} (same file names and content)."))
            return 0
        if self.session.push(RelinkSources(plan.paths)) is None:  # the change refreshes pictures and the bar
            return 0
        found = before - len(missing_drawings(project.shot, project.folder))
        self.show_message(f"Found {found} of {before} missing drawings in {folder}.")
        return found

    def _set_project(self, project: Project | None) -> None:
        previous = self.session.project
        if previous is not None and previous is not project:
            previous.release()
        for task in self.worker.active_tasks():
            if task.kind == "generate":
                self.worker.cancel(task)
        self.playback.stop()
        for loader in (self.thumbnails, self.frames, self.tints):
            loader.invalidate()
        self.session.set_project(project)
        self._watch_farm_takes(project)
        if project is not None:
            self.settings.add_recent(str(project.folder))
            self._save_settings()
            self._update_recent_menu()

    def _watch_farm_takes(self, project: Project | None) -> None:
        """Merge takes that farm tasks register while the project is open (project/farm_takes.py)."""
        if getattr(self, "farm_timer", None) is None:
            self.farm_timer = QTimer(self)
            self.farm_timer.timeout.connect(self.poll_farm_takes)
        self.farm_takes = FarmTakeWatcher(project) if project is not None else None
        if project is not None:
            self.farm_timer.start(FARM_POLL_MS)
        else:
            self.farm_timer.stop()

    def poll_farm_takes(self) -> int:
        """One look at the project file; says "N new takes from the farm". Returns how many arrived."""
        watcher = getattr(self, "farm_takes", None)
        if watcher is None or watcher.project is not self.session.project:
            return 0
        arrived = watcher.poll()
        if arrived:
            self.show_message(arrived.message, 15000)
        return len(arrived.takes)

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

        return self.worker.submit("Import", run, "import", payload=Path(folder), on_done=self._import_done)

    def _import_done(self, task) -> None:
        if task.state == "failed":
            self.show_error("Import failed", StudioError(task.error))
        if task.state != "done":
            return
        result = task.result
        try:
            project = new_project(task.payload, result.source, result.groups)
            project.claim(OWNER_NAME, admit_shared=True)
        except StudioError as exc:
            self.show_error("Cannot create the project", exc)
            return
        for warning in getattr(result, "warnings", []) or []:
            log.warning("%s", warning)
        self._set_project(project)
        self.show_message(f"New project {project.folder.name}: {project.shot.frame_count} frames. "
                          "Set keys with K, then select a key pair and press G.")

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

    def new_from_pattern_dialog(self) -> PatternDialog:
        """Pattern (or Browse to a frame), hold detection and project folder, in one dialog."""
        dialog = PatternDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def create() -> None:
            pattern, folder, holds = dialog.values()
            if pattern and folder:
                self.create_project(pattern, folder, detect_holds=holds)

        dialog.accepted.connect(create)
        dialog.open()
        return dialog

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def save(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        watcher = getattr(self, "farm_takes", None)
        try:
            if watcher is not None and watcher.project is project:
                arrived = watcher.save()  # takes the farm registered meanwhile are merged, never overwritten
            else:
                arrived = None
                project.save()
        except StudioError as exc:
            self.show_error("Cannot save", exc)
            return False
        self.show_message(f"Saved {project.project_file}" + (f" ({arrived.message})" if arrived else ""))
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
        try:
            project.claim(OWNER_NAME, admit_shared=True)
        except StudioError as exc:
            self.show_message(str(exc))
        self._watch_farm_takes(project)  # the new folder's file from now on
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
            if path and os.path.lexists(Path(path) / PROJECT_FILE):
                if self.open_project(path):
                    return
                # a damaged project: open nothing rather than something else, and say why
                self.show_open_problem(self.last_open_error or f"{path} cannot be opened.")
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
