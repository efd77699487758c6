"""Takes whose frames are on disk but which the project does not list, offered back at opening.

A generation writes its frames and a manifest (`take.json`, the take as project.json would hold it)
into a temporary folder and renames it to `takes/<take id>/` in one step (pipeline/runner.py).
The studio then records the take in project.json at once, under the project's write lock
(pipeline/shared_project.record_take). If the app is killed between the two, the folder is
complete but unlisted: `find_orphan_takes` finds such folders, checks each manifest like a take
in project.json (safe id, keys that are drawings of this shot, frame files inside the project and
present), and `RestoreTakes` adds them back as one undoable command.

Folders without a manifest (written by older versions), temporary folders, links, folders of takes
the history or the recovery copy can bring back, and damaged manifests are left alone (a damaged
one is logged): nothing here deletes anything.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..core.errors import ProjectError
from ..core.fsio import atomic_write_text, read_regular_file
from .commands import AddTake, Change, Command
from .document import Shot, Take
from .project import TAKES_DIR, TEMP_PREFIX, Project
from .serialize import MAX_TAKE_MANIFEST_BYTES, is_safe_id, take_from_json, take_to_dict

log = logging.getLogger(__name__)

TAKE_MANIFEST = "take.json"
MAX_TAKE_FOLDERS_SCANNED = 10_000  # entries of takes/ looked at when a project opens


def write_take_manifest(folder: Path, take: Take) -> None:
    """Write `take` as `folder/take.json` (atomically)."""
    atomic_write_text(folder / TAKE_MANIFEST, json.dumps(take_to_dict(take), indent=1), error=ProjectError)


def find_orphan_takes(project: Project) -> list[Take]:
    """Complete take folders of this project that it does not list, as takes to add back (oldest first)."""
    takes_dir = project.folder / TAKES_DIR
    if not takes_dir.is_dir() or takes_dir.is_symlink():
        return []
    listed = project.kept_take_folders()
    found: list[Take] = []
    try:
        with os.scandir(takes_dir) as entries:
            names = []
            for entry in entries:
                if len(names) >= MAX_TAKE_FOLDERS_SCANNED:
                    log.warning("%s holds more than %d entries; only those were looked at for unlisted takes",
                                takes_dir, MAX_TAKE_FOLDERS_SCANNED)
                    break
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(TEMP_PREFIX) \
                        and is_safe_id(entry.name) and entry.name not in listed:
                    names.append(entry.name)
    except OSError as exc:
        log.warning("Could not look for unlisted takes in %s: %s", takes_dir, exc)
        return []
    seen = set(project.shot.takes)
    for name in sorted(names):
        take = _read_orphan(project.folder, takes_dir / name, project.shot)
        if take is not None and take.id not in seen:
            seen.add(take.id)
            found.append(take)
    return sorted(found, key=lambda take: (take.created, take.id))


def _read_orphan(folder: Path, take_dir: Path, shot: Shot) -> Take | None:
    manifest = take_dir / TAKE_MANIFEST
    if not os.path.lexists(manifest):
        return None  # not ours to interpret (an older version's take, or someone's folder)
    try:
        raw = read_regular_file(manifest, MAX_TAKE_MANIFEST_BYTES, ProjectError, "take manifest")
        take = take_from_json(raw, shot, folder, str(manifest))
    except ProjectError as exc:
        log.warning("An unlisted take folder was not offered back: %s", exc)
        return None
    if take.id != take_dir.name or not take.frames:
        log.warning("An unlisted take folder was not offered back: %s names another take", manifest)
        return None
    missing = [f.file for f in take.frames if not (folder / f.file).is_file()]
    if missing:
        log.warning("An unlisted take folder was not offered back: %s lacks %s", take_dir, missing[0])
        return None
    return take


class RestoreTakes(Command):
    """Add unlisted takes back to their segments (none becomes the active take); one undo step."""

    label = "Restore takes"

    def __init__(self, takes: list[Take]) -> None:
        self.takes = list(takes)
        self._added: list[AddTake] = []

    def do(self, shot: Shot) -> Change:
        change = Change()
        self._added = []
        try:
            for take in self.takes:
                take.label = _free_label(shot, take)
                add = AddTake(take, activate=False)
                change = change | add.do(shot)
                self._added.append(add)
        except BaseException:
            self.undo(shot)
            raise
        return change

    def undo(self, shot: Shot) -> Change:
        change = Change()
        while self._added:
            change = change | self._added.pop().undo(shot)
        return change

    def referenced_takes(self) -> list[Take]:
        return list(self.takes)


def _free_label(shot: Shot, take: Take) -> str:
    """The take's own label when its key pair has no take of that name, else the next T<n>."""
    segment = shot.segments.get((take.start_key, take.end_key))
    used = {shot.takes[t].label for t in segment.take_ids} if segment is not None else set()
    if take.label and take.label not in used:
        return take.label
    numbers = [segment.takes_made if segment is not None else 0]
    numbers += [int(label[1:]) for label in used if label[:1] == "T" and label[1:].isdigit()]
    return f"T{max(numbers) + 1}"
