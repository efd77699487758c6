"""Portable projects: where each source's files are, which drawings are missing, and relinking.

project.json keeps a source's folder relative to the project (`../plates/sh010`), so a project
copied together with its drawings opens anywhere; only a source on another drive stays absolute.
At import a few of the source's files get a content fingerprint (`quick_hash`), so relinking can
tell the right folder from one that merely has the same file names.

`relink_plan(shot, project_folder, search_dir)` finds, for each source with missing files, a folder
under `search_dir` holding all of them by name whose fingerprints match; `RelinkSources` applies
it as one undoable command. Nothing is copied or moved.

The search is bounded, whatever folder it is given (even `/`): at most SEARCH_DEPTH levels,
SEARCH_FOLDERS folders, SEARCH_ENTRIES directory entries looked at and SEARCH_SECONDS; a folder that
cannot be read is skipped; the system's /proc, /sys and /dev are not searched. The plan's notes say
which folders were skipped and which bound stopped the search (the CLI prints them as warnings).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from .commands import Change, Command
from .document import Shot, Source, SourceKind

HASH_BYTES = 1 << 20  # a fingerprint reads at most the first and last MiB of a file
FINGERPRINTED_FILES = 3  # first, middle and last file of a sequence
SEARCH_DEPTH = 4  # folders below the search folder that relinking looks into
SEARCH_FOLDERS = 20_000  # and at most this many folders
SEARCH_ENTRIES = 500_000  # directory entries looked at (files and folders)
SEARCH_SECONDS = 30.0  # walking and comparing, all sources together
SYSTEM_FOLDERS = frozenset({"/proc", "/sys", "/dev"})  # never hold drawings; /proc alone has thousands of folders


def quick_hash(path: str | os.PathLike) -> str:
    """A content fingerprint: blake2b of the size, the first and the last MiB (fast on any file)."""
    digest = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
        digest.update(handle.read(HASH_BYTES))
        if size > 2 * HASH_BYTES:
            handle.seek(size - HASH_BYTES)
            digest.update(handle.read(HASH_BYTES))
    return digest.hexdigest()


def fingerprint_source(source: Source, folder: Path) -> dict[str, str]:
    """Fingerprints of a few of the source's files (all of a video), by file name."""
    if source.kind == SourceKind.VIDEO:
        return {folder.name: quick_hash(folder)}
    names = source.files
    picks = sorted({0, len(names) // 2, len(names) - 1}) if names else []
    return {names[i]: quick_hash(folder / names[i]) for i in picks[:FINGERPRINTED_FILES]}


def portable_path(path: str, project_folder: Path) -> str:
    """`path` relative to the project folder (forward slashes) unless it is on another drive."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return path.replace("\\", "/")
    try:
        relative = os.path.relpath(candidate, project_folder)
    except ValueError:  # another drive (Windows): only an absolute path can say where
        return path
    return Path(relative).as_posix()


def source_location(source: Source, project_folder: Path) -> Path:
    path = Path(source.path)
    return path if path.is_absolute() else project_folder / path


def missing_files(source: Source, project_folder: Path) -> list[str]:
    """The source's files that are not on disk (for a video: the video itself)."""
    location = source_location(source, project_folder)
    if source.kind == SourceKind.VIDEO:
        return [] if location.is_file() else [location.name]
    if not location.is_dir():
        return list(source.files)
    return [name for name in source.files if not (location / name).is_file()]


def missing_drawings(shot: Shot, project_folder: Path) -> list[str]:
    """Ids of drawings whose picture file is missing."""
    missing: dict[str, set[str]] = {}
    for source in shot.sources.values():
        names = missing_files(source, project_folder)
        if names:
            missing[source.id] = set(names)
    result = []
    for drawing in shot.drawings.values():
        names = missing.get(drawing.source_id)
        if not names:
            continue
        source = shot.sources[drawing.source_id]
        if source.kind == SourceKind.VIDEO or (0 <= drawing.source_frame < len(source.files)
                                               and source.files[drawing.source_frame] in names):
            result.append(drawing.id)
    return result


@dataclass
class RelinkPlan:
    paths: dict[str, str] = field(default_factory=dict)  # source id -> new stored path
    found: dict[str, Path] = field(default_factory=dict)  # source id -> folder (or video) found
    unmatched: list[str] = field(default_factory=list)  # source ids still missing
    notes: list[str] = field(default_factory=list)  # e.g. a folder with the names but other pictures


@dataclass
class _Search:
    """The bounded walk: folders found, what was skipped, and which bound (if any) ended it."""

    deadline: float
    entries: int = 0
    unreadable: list[Path] = field(default_factory=list)
    stopped: str = ""  # which bound ended the search early
    deeper: bool = False  # folders at the last level were not looked into

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.stopped = self.stopped or f"after {SEARCH_SECONDS:.0f} s"
            return True
        return False

    def notes(self, root: Path, complete: bool) -> list[str]:
        """Warnings: skipped folders always; the bounds only when a source is still missing (`complete`
        False), since then the drawings may be where the search did not go."""
        notes = []
        if self.unreadable:
            shown = ", ".join(str(p) for p in self.unreadable[:3])
            more = f" and {len(self.unreadable) - 3} more" if len(self.unreadable) > 3 else ""
            notes.append(f"{len(self.unreadable)} folder{'s' if len(self.unreadable) != 1 else ''} could not be "
                         f"read and {'were' if len(self.unreadable) != 1 else 'was'} skipped: {shown}{more}.")
        if complete:
            return notes
        if self.stopped:
            notes.append(f"The search under {root} stopped {self.stopped}; give a folder closer to the drawings.")
        elif self.deeper:
            notes.append(f"Folders more than {SEARCH_DEPTH} levels below {root} were not searched; give a folder "
                         "closer to the drawings if they are deeper.")
        return notes


def _folders(search_dir: Path, search: _Search) -> list[Path]:
    """Folders under `search_dir`, level by level, within the bounds (see the module docstring)."""
    found = [search_dir]
    level = [search_dir]
    for depth in range(SEARCH_DEPTH + 1):
        deeper: list[Path] = []
        for folder in level:
            if search.out_of_time():
                return found
            if depth == SEARCH_DEPTH:  # the last level is not opened; say so if it has folders
                search.deeper = search.deeper or _has_subfolders(folder)
                continue
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        search.entries += 1
                        if search.entries > SEARCH_ENTRIES:
                            search.stopped = f"after {SEARCH_ENTRIES:,} entries"
                            return found + deeper
                        if _is_dir(entry) and not entry.name.startswith(".") and entry.path not in SYSTEM_FOLDERS:
                            deeper.append(Path(entry.path))
            except OSError:
                search.unreadable.append(folder)
                continue
            if len(found) + len(deeper) >= SEARCH_FOLDERS:
                search.stopped = f"after {SEARCH_FOLDERS:,} folders"
                return (found + deeper)[:SEARCH_FOLDERS]
        found.extend(deeper)
        level = deeper
    return found


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _has_subfolders(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(_is_dir(e) and not e.name.startswith(".") for e in entries)
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    """Like Path.is_file, but a file that cannot be looked at (no permission) is simply not there."""
    try:
        return path.is_file()
    except OSError:
        return False


def _holds_names(source: Source, candidate: Path) -> bool:
    if source.kind == SourceKind.VIDEO:
        return _is_file(candidate)
    # the first name first: most folders fail on it with one look
    return bool(source.files) and _is_file(candidate / source.files[0]) and \
        all(_is_file(candidate / name) for name in source.files)


def _matches(source: Source, candidate: Path) -> bool:
    """Whether `candidate` (a folder, or a video file) holds this source: same names, same fingerprints."""
    if not _holds_names(source, candidate):
        return False
    hashes = source.hashes.items() if source.kind != SourceKind.VIDEO else \
        [(candidate.name, source.hashes.get(candidate.name))]
    for name, want in hashes:
        if want is None:
            continue
        try:
            if quick_hash(candidate if source.kind == SourceKind.VIDEO else candidate / name) != want:
                return False
        except OSError:
            return False
    return True


def relink_plan(shot: Shot, project_folder: Path, search_dir: str | os.PathLike) -> RelinkPlan:
    """Where the missing sources are under `search_dir` (see the module docstring)."""
    root = Path(search_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder that holds the drawings.")
    root = root.resolve()
    plan = RelinkPlan()
    folders: list[Path] | None = None
    search = _Search(time.monotonic() + SEARCH_SECONDS)
    for source in shot.sources.values():
        if not missing_files(source, project_folder):
            continue
        folders = folders if folders is not None else _folders(root, search)
        name = Path(source.path).name
        candidates = [f / name for f in folders] if source.kind == SourceKind.VIDEO else folders
        for candidate in candidates:
            if search.out_of_time():
                plan.unmatched.append(source.id)
                break
            if not _holds_names(source, candidate):
                continue
            if _matches(source, candidate):
                plan.found[source.id] = candidate
                plan.paths[source.id] = portable_path(str(candidate), project_folder)
                break
            plan.notes.append(f"{candidate} has the file names of source {source.id} but other pictures; "
                              "it was not used.")
        else:
            plan.unmatched.append(source.id)
    if folders is not None:
        plan.notes += search.notes(root, complete=not plan.unmatched)
    return plan


class RelinkSources(Command):
    """Point sources at the folders where their files are now (undoable; no file is touched)."""

    label = "Locate Missing Drawings"

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = dict(paths)
        self._before: dict[str, str] = {}

    def do(self, shot: Shot) -> Change:
        unknown = [i for i in self.paths if i not in shot.sources]
        if unknown:
            raise InputError(f"The shot has no source '{unknown[0]}'.")
        if not self.paths:
            raise InputError("No missing drawings were found to relink.")
        self._before = {i: shot.sources[i].path for i in self.paths}
        for source_id, path in self.paths.items():
            shot.sources[source_id].path = path
        return Change(timeline=True, sources=True)

    def undo(self, shot: Shot) -> Change:
        for source_id, path in self._before.items():
            shot.sources[source_id].path = path
        return Change(timeline=True, sources=True)
