"""Whether a command may write a file where one already exists: the rule every writer shares.

- An input of the same command is never replaced, whatever --overwrite says (`lineart a.png a.png`
  would destroy the drawing it is reading).
- A file that belongs to a project (anything inside a folder that holds a project.json: the
  project file, its recovery copy, takes, sketches, locks) is never replaced by a loose command;
  the project writes its own files through its own undoable, atomic paths.
- Anything else that exists is replaced only with --overwrite.

Identity is by (device, inode), so a symlink or a second name of the same file is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..core.errors import ExportError, InputError

PROJECT_FILE = "project.json"
_MAX_PARENTS = 256  # folders looked at above a target (deeper paths than this do not exist in practice)


def file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    first = file_id(a)
    return first is not None and first == file_id(b)


def enclosing_project(path: str | os.PathLike) -> Path | None:
    """The project folder that holds `path` (after following links), or None."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    for folder in list(resolved.parents)[:_MAX_PARENTS]:
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def check_replace(target: str | os.PathLike, inputs: Iterable[str | os.PathLike], overwrite: bool,
                  option: str = "--overwrite") -> None:
    """Raise unless writing `target` is allowed by the rule above; nothing is touched either way."""
    target = Path(target)
    if not os.path.lexists(target):
        return
    if target.is_dir():
        raise ExportError(f"{target} is a folder; a file cannot be written there.")
    for source in inputs:
        if same_file(target, source):
            raise InputError(f"{target} is an input of this command; it is never replaced, whatever {option} "
                             "says. Choose another output name.")
    project = enclosing_project(target)
    if project is not None:
        raise ExportError(f"{target} belongs to the project in {project}; a project's files are never replaced "
                          f"from outside it, whatever {option} says. Choose another output name.")
    if not overwrite:
        raise ExportError(f"{target} already exists; pass {option} to replace it, or choose another name.")
