"""A project on disk: a folder with `project.json`, generated frames under `takes/`, and autosave.

    my_shot/
      project.json            the document (serialize.py), written atomically
      takes/<take id>/0001.png generated frames, one folder per take
      takes/.tmp-<take id>/    a take being written (renamed into place when complete)
      .autosave/project.json  the recovery copy written by autosave

Saving writes a temporary file, fsyncs it and renames it over project.json, so a crash or a
kill at any moment leaves the last good file. Autosave writes only the recovery copy; on open the
app asks `find_recovery(folder)` whether a newer copy exists and, if the user agrees, opens it
with `recover(folder)` (marked unsaved). A save by the session that wrote (or recovered) the copy
removes it; a headless command saving the same folder leaves another session's copy alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import ProjectError
from ..core.fsio import atomic_write_text, file_identity, os_error
from .commands import Change, Command, CommandStack
from .document import Cell, Drawing, Shot, Source, Take
from .ownership import Claim, claim, shared_writers
from .serialize import (
    check_internal_path,
    document_to_json,
    is_safe_id,
    read_document,
    relative_if_inside,
    shot_to_dict,
)

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
TAKES_DIR = "takes"
AUTOSAVE_DIR = ".autosave"
TEMP_PREFIX = ".tmp-"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _project_folder(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if folder.name == PROJECT_FILE and not folder.is_dir():
        folder = folder.parent
    return folder.resolve()


def recovery_path(folder: str | os.PathLike) -> Path:
    return _project_folder(folder) / AUTOSAVE_DIR / PROJECT_FILE


@dataclass(frozen=True)
class Recovery:
    """A recovery copy newer than the saved project."""

    folder: Path
    path: Path
    saved_at: str  # when autosave wrote it (ISO-8601 UTC)
    project_saved_at: str  # when project.json was last saved ("" if unknown)


class Project:
    """The document being edited: its folder, the shot, and the command stack.

    All edits go through `push` (or `stack.push`) so they can be undone. Saving and autosave
    run on the thread that owns the project (the GUI thread); job workers only write take
    folders, whose ids `new_take_id` reserves so that garbage collection leaves them alone.
    """

    def __init__(self, folder: str | os.PathLike, shot: Shot, saved_at: str = "") -> None:
        self.folder = _project_folder(folder)
        self.shot = shot
        self.stack = CommandStack(shot)
        self.saved_at = saved_at
        self._autosaved_revision = 0
        self._reserved: set[str] = set()
        self._lock = threading.Lock()
        # Whether the recovery copy on disk is ours (written by this session or recovered from):
        # only then does a save remove it; another session's copy is left for the app to offer.
        self._owns_recovery = False
        self.ownership: Claim | None = None

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        """Open a project folder (or its project.json). Raises ProjectError with a clear message."""
        root = _project_folder(folder)
        if not root.exists():
            raise ProjectError(f"{root} does not exist.")
        if not root.is_dir():
            raise ProjectError(f"{root} is not a project folder.")
        if not (root / PROJECT_FILE).exists():
            raise ProjectError(f"{root} is not a ToonCrafter Studio project (it has no {PROJECT_FILE}).")
        shot, envelope = read_document(root / PROJECT_FILE, root)
        return cls(root, shot, saved_at=str(envelope.get("saved_at", "")))

    @classmethod
    def create(cls, folder: str | os.PathLike, shot: Shot) -> Project:
        """Make `folder` a project holding `shot` and save it. The folder must not be a project yet."""
        root = _project_folder(folder)
        if (root / PROJECT_FILE).exists():
            raise ProjectError(f"{root} is already a project; open it instead, or choose another folder.")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file, not a folder.")
        made = [parent for parent in [root, *root.parents] if not parent.exists()]
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(ProjectError, root, exc, "create the project folder") from None
        for source in shot.sources.values():
            source.path = relative_if_inside(source.path, root)
        project = cls(root, shot)
        try:
            project.save()
        except BaseException:
            for folder in made:  # a failed create leaves no empty folders behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        return project

    # ---------------------------------------------------------------- state

    @property
    def project_file(self) -> Path:
        return self.folder / PROJECT_FILE

    @property
    def modified(self) -> bool:
        """Unsaved changes (for the window title)."""
        return not self.stack.is_clean

    def push(self, command: Command) -> Change:
        return self.stack.push(command)

    def undo(self) -> Change:
        return self.stack.undo()

    def redo(self) -> Change:
        return self.stack.redo()

    def path_of(self, relative: str) -> Path:
        """The absolute path of an internal file; refuses one that escapes the folder."""
        try:
            return self.folder / check_internal_path(relative, self.folder)
        except ValueError as exc:
            raise ProjectError(f"Unsafe path in project {self.folder}: {exc}.") from None

    def source_folder(self, source: Source) -> Path:
        path = Path(source.path)
        return path if path.is_absolute() else self.folder / path

    # ---------------------------------------------------------------- takes on disk

    def new_take_id(self) -> str:
        """A fresh take id, reserved until `release_take_id` (or until the take is in the shot)."""
        while True:
            take_id = "t" + uuid.uuid4().hex[:10]
            with self._lock:
                if take_id not in self.shot.takes and take_id not in self._reserved \
                        and not self.take_dir(take_id).exists():
                    self._reserved.add(take_id)
                    return take_id

    def release_take_id(self, take_id: str) -> None:
        with self._lock:
            self._reserved.discard(take_id)

    def take_dir(self, take_id: str) -> Path:
        if not is_safe_id(take_id):
            raise ProjectError(f"'{take_id}' is not a valid take id.")
        return self.folder / TAKES_DIR / take_id

    def _recovery_takes(self) -> list[Take]:
        path = recovery_path(self.folder)
        if not path.exists():
            return []
        try:
            shot, _ = read_document(path, self.folder)
        except ProjectError:
            return []
        return list(shot.takes.values())

    def _registered_takes(self) -> list[Take]:
        """Takes in project.json on disk: another process (a farm task) may have registered some."""
        try:
            shot, _ = read_document(self.project_file, self.folder)
        except ProjectError:
            return []
        return list(shot.takes.values())

    def kept_take_folders(self) -> set[str]:
        """Names of the folders under takes/ that a take of the shot, one undo/redo can restore, one a
        running job reserved, one in the recovery copy or one another process (a farm task) registered on disk
        owns or has frames in."""
        with self._lock:
            takes = list(self.shot.takes.values()) + self.stack.referenced_takes()
            keep = {take.id for take in takes} | self.stack.referenced_take_ids() | self._reserved
        takes += self._recovery_takes() + self._registered_takes()
        return keep | {take.id for take in takes} | _take_folders(takes)

    def collect_garbage(self, stale_temp_s: float = 3600.0) -> list[str]:
        """Delete take folders that nothing can bring back; returns their names.

        Kept: folders of takes in the shot, of takes any undo/redo step could restore, of takes
        reserved by a running job, of takes in the recovery copy, and every folder any of those
        takes' frame files lie in (a take may reuse frames of an earlier one). Temporary folders
        of interrupted writes are removed once older than `stale_temp_s`; anything that is not a
        take folder is left alone.
        """
        takes_dir = self.folder / TAKES_DIR
        if not takes_dir.is_dir():
            return []
        if shared_writers(self.folder):  # a farm task may be between writing its take and registering it
            log.info("Not collecting take folders of %s while farm tasks write to it", self.folder)
            return []
        keep = self.kept_take_folders()
        removed: list[str] = []
        now = time.time()
        for entry in sorted(takes_dir.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name.startswith(TEMP_PREFIX):
                take_id = entry.name[len(TEMP_PREFIX):]
                if take_id in keep or now - entry.stat().st_mtime < stale_temp_s:
                    continue
            elif entry.name in keep or not is_safe_id(entry.name):
                continue
            try:
                shutil.rmtree(entry)
                removed.append(entry.name)
            except OSError as exc:
                log.warning("Could not remove the unused take folder %s: %s", entry, exc)
        return removed

    # ---------------------------------------------------------------- saving

    def save(self, collect_garbage: bool = False) -> None:
        """Write project.json atomically; the recovery copy goes once the save is safe on disk."""
        saved_at = _now()
        text = document_to_json(self.shot, self.folder, {"saved_at": saved_at})
        atomic_write_text(self.project_file, text, error=ProjectError)
        self.saved_at = saved_at
        self.stack.set_clean()
        self._autosaved_revision = self.stack.revision
        if self._owns_recovery:
            self.discard_recovery()
        self._remove_stale_temp_files()
        if collect_garbage:
            self.collect_garbage()

    def _remove_stale_temp_files(self, age_s: float = 3600.0) -> None:
        """Temporary files of saves killed mid-write (an hour old: no live save is that slow)."""
        now = time.time()
        for folder in (self.folder, self.folder / AUTOSAVE_DIR):
            for path in folder.glob(f".{PROJECT_FILE}.*.tmp"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > age_s:
                        path.unlink()
                        log.info("Removed %s, left by a save that was interrupted", path)

    def save_as(self, folder: str | os.PathLike) -> None:
        """Save into another folder: take frames are copied, sources keep pointing at their files."""
        root = _project_folder(folder)
        if root == self.folder:
            self.save()
            return
        if (root / PROJECT_FILE).exists():
            raise ProjectError(f"{root} is already a project; choose an empty folder.")
        try:
            root.mkdir(parents=True, exist_ok=True)
            # every folder a take (in the shot, or one undo/redo can restore) has frames in
            for name in sorted(_take_folders(list(self.shot.takes.values()) + self.stack.referenced_takes())):
                src = self.folder / TAKES_DIR / name
                if src.is_dir():
                    shutil.copytree(src, root / TAKES_DIR / name, dirs_exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"Cannot copy the takes into {root}: {exc.strerror or exc}.") from None
        old_folder = self.folder
        had_recovery = self._owns_recovery
        self._owns_recovery = False
        for source in self.shot.sources.values():  # relative to the old folder -> absolute
            path = Path(source.path)
            if not path.is_absolute():
                source.path = str((old_folder / path).resolve())
        self.folder = root
        for source in self.shot.sources.values():
            source.path = relative_if_inside(source.path, root)
        self.save()
        if had_recovery:  # the work is safe in the new folder; the old copy would only mislead
            discard_recovery(old_folder)

    def autosave(self, force: bool = False) -> bool:
        """Write the recovery copy if there are changes since the last save or autosave."""
        if not force and self.stack.is_clean:
            if self._autosaved_revision != self.stack.revision and self._owns_recovery:
                self.discard_recovery()  # undone back to the saved state
                self._autosaved_revision = self.stack.revision
            return False
        if not force and self.stack.revision == self._autosaved_revision:
            return False
        text = document_to_json(self.shot, self.folder, {"saved_at": _now(), "autosave_of": self.saved_at})
        atomic_write_text(recovery_path(self.folder), text, error=ProjectError)
        self._autosaved_revision = self.stack.revision
        self._owns_recovery = True
        return True

    def discard_recovery(self) -> None:
        """Remove the recovery copy (after a save, or when the user declines to recover)."""
        discard_recovery(self.folder)
        self._owns_recovery = False

    def to_dict(self) -> dict:
        return shot_to_dict(self.shot, self.folder)

    # ---------------------------------------------------------------- ownership

    def claim(self, what: str, shared: bool = False, admit_shared: bool = False) -> Claim:
        """Claim the folder for writing (ownership.py); raises ProjectLocked when another program has it.

        The first claim by this process also removes the temporary files of saves that were killed
        mid-write: nobody else can be writing them now.
        """
        held = claim(self.folder, what, shared, admit_shared)
        if held.first:
            self._remove_stale_temp_files(age_s=-1.0)
        if self.ownership is not None:
            self.ownership.release()
        self.ownership = held
        return held

    def release(self) -> None:
        """Give up the claim (closing the project in the app, or a command ending)."""
        if self.ownership is not None:
            self.ownership.release()
            self.ownership = None


def _take_folders(takes: list[Take]) -> set[str]:
    """Names of the folders under takes/ that these takes own or have frames in."""
    names = {take.id for take in takes}
    prefix = TAKES_DIR + "/"
    for take in takes:
        for frame in take.frames:
            if frame.file.startswith(prefix):
                names.add(frame.file[len(prefix):].split("/", 1)[0])
    return names


# -------------------------------------------------------------------- recovery


def set_aside(path: Path) -> Path | None:
    """Rename a damaged file to `<name>.damaged-<UTC time><suffix>` beside it (never deleted)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for n in range(100):
        target = path.with_name(f"{path.stem}.damaged-{stamp}{f'-{n}' if n else ''}{path.suffix}")
        if os.path.lexists(target):
            continue
        try:
            os.rename(path, target)
        except OSError as exc:
            log.warning("Could not set aside %s: %s", path, exc)
            return None
        return target
    return None


def project_folder_of(path: str | os.PathLike) -> str | None:
    """The project folder a path names (the folder, or its project.json), else None: what a file
    manager, a file association or the command line hands over."""
    path = Path(path)
    if path.name == PROJECT_FILE and path.is_file():
        return str(path.parent)
    if path.is_dir() and (path / PROJECT_FILE).is_file():
        return str(path)
    return None


def find_recovery(folder: str | os.PathLike, on_damaged: Callable[[str], None] | None = None) -> Recovery | None:
    """A recovery copy that is newer than project.json and differs from it, or None.

    A damaged recovery copy cannot help but must not stop the project from opening: it is set aside
    (renamed, not deleted) and `on_damaged` (default: a logged warning) gets one sentence saying so.
    """
    root = _project_folder(folder)
    path = recovery_path(root)
    if not os.path.lexists(path):
        return None
    copy_id = file_identity(path)
    saved_id = file_identity(root / PROJECT_FILE)
    if copy_id is not None and saved_id is not None and copy_id[0] < saved_id[0]:
        return None
    try:
        shot, envelope = read_document(path, root)
    except ProjectError as exc:
        moved = set_aside(path)
        where = f"; it was set aside as {moved.name}" if moved is not None else ""
        (on_damaged or log.warning)(f"The recovery copy is damaged and was not used{where}: {exc}")
        return None
    project_saved_at = ""
    if saved_id is not None:
        try:
            saved_shot, saved_envelope = read_document(root / PROJECT_FILE, root)
        except ProjectError:  # the saved file is damaged: the copy is worth offering
            saved_shot, saved_envelope = None, {}
        if saved_shot is not None and shot_to_dict(saved_shot, root) == shot_to_dict(shot, root):
            return None  # nothing to recover
        project_saved_at = str(saved_envelope.get("saved_at", ""))
    return Recovery(root, path, str(envelope.get("saved_at", "")), project_saved_at)


def recover(folder: str | os.PathLike) -> Project:
    """Open the recovery copy as the project's document, marked as unsaved.

    project.json is untouched until the user saves; the copy stays until then too.
    """
    root = _project_folder(folder)
    shot, envelope = read_document(recovery_path(root), root)
    project = Project(root, shot, saved_at=str(envelope.get("autosave_of", "")))
    project.stack.set_dirty()  # the recovered state is not what is on disk
    project._owns_recovery = True
    project._autosaved_revision = project.stack.revision
    return project


def discard_recovery(folder: str | os.PathLike) -> None:
    path = recovery_path(folder)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


# -------------------------------------------------------------------- new projects


def shot_from_source(source: Source, groups: list[tuple[int, int]] | None = None,
                     fps: float | None = None, name: str | None = None) -> Shot:
    """A shot showing an imported source: one drawing per hold group (or per frame)."""
    if source.frame_count < 1:
        raise ProjectError(f"{source.path} has no frames to make a shot from.")
    if groups is None:
        groups = [(i, 1) for i in range(source.frame_count)]
    shot = Shot(name=name or Path(source.path).stem or "shot", fps=float(fps or source.fps or 24.0),
                width=source.width, height=source.height, has_alpha=source.has_alpha, bit_depth=source.bit_depth)
    shot.sources[source.id] = source
    expected = 0
    for first, length in groups:
        first, length = int(first), int(length)
        if length < 1 or first != expected or first + length > source.frame_count:
            raise ProjectError(f"The hold groups for {source.path} do not tile its {source.frame_count} frames "
                               f"(group at frame {first + 1}, length {length}).")
        expected = first + length
        drawing = Drawing(id=f"d{first + 1:04d}", source_id=source.id, source_frame=first)
        shot.drawings[drawing.id] = drawing
        shot.cells.append(Cell(drawing.id, length))
    if expected != source.frame_count:
        raise ProjectError(f"The hold groups for {source.path} cover {expected} of its {source.frame_count} frames.")
    return shot


def new_project(folder: str | os.PathLike, source: Source, groups: list[tuple[int, int]] | None = None,
                fps: float | None = None, name: str | None = None) -> Project:
    """Create a project in `folder` from an imported source (media.import_source) and save it.

    groups: (first source frame, length) exposures from hold detection; None = one drawing per frame.
    fps: the shot's frame rate; None = the source's.
    """
    root = _project_folder(folder)
    # a folder name in another system's encoding still makes a storable shot name
    default = root.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    shot = shot_from_source(source, groups, fps, name or default)
    return Project.create(root, shot)


def open_project(folder: str | os.PathLike) -> Project:
    return Project.open(folder)
