"""Portable projects: where each source's files are, which drawings are missing, and relinking.

project.json keeps a source's folder relative to the project (`../plates/sh010`), so a project
copied together with its drawings opens anywhere; only a source on another drive stays absolute.
At import a few of the source's files get a content fingerprint (`quick_hash`), so relinking can
tell the right folder from one that merely has the same file names.

`relink_plan(shot, project_folder, search_dir)` finds, for each source with missing files, a folder
under `search_dir` holding all of them by name whose fingerprints match; `RelinkSources` applies
it as one undoable command. Nothing is copied or moved.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from .commands import Change, Command
from .document import Shot, Source, SourceKind

HASH_BYTES = 1 << 20  # a fingerprint reads at most the first and last MiB of a file
FINGERPRINTED_FILES = 3  # first, middle and last file of a sequence
SEARCH_DEPTH = 4  # folders below the search folder that relinking looks into
SEARCH_FOLDERS = 20_000  # and at most this many folders


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


def _folders(search_dir: Path) -> list[Path]:
    found = [search_dir]
    level = [search_dir]
    for _ in range(SEARCH_DEPTH):
        deeper = []
        for folder in level:
            try:
                with os.scandir(folder) as entries:
                    deeper.extend(Path(e.path) for e in entries
                                  if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
            except OSError:
                continue
        found.extend(deeper)
        level = deeper
        if len(found) > SEARCH_FOLDERS:
            break
    return found[:SEARCH_FOLDERS]


def _matches(source: Source, candidate: Path) -> bool:
    """Whether `candidate` (a folder, or a video file) holds this source: same names, same fingerprints."""
    if source.kind == SourceKind.VIDEO:
        if not candidate.is_file():
            return False
        want = source.hashes.get(candidate.name)
        return want is None or quick_hash(candidate) == want
    if not all((candidate / name).is_file() for name in source.files):
        return False
    for name, want in source.hashes.items():
        try:
            if quick_hash(candidate / name) != want:
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
    for source in shot.sources.values():
        if not missing_files(source, project_folder):
            continue
        folders = folders if folders is not None else _folders(root)
        name = Path(source.path).name
        candidates = [f / name for f in folders] if source.kind == SourceKind.VIDEO else folders
        for candidate in candidates:
            same_names = (candidate.is_file() if source.kind == SourceKind.VIDEO
                          else all((candidate / n).is_file() for n in source.files))
            if not same_names:
                continue
            if _matches(source, candidate):
                plan.found[source.id] = candidate
                plan.paths[source.id] = portable_path(str(candidate), project_folder)
                break
            plan.notes.append(f"{candidate} has the file names of source {source.id} but other pictures; "
                              "it was not used.")
        else:
            plan.unmatched.append(source.id)
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
