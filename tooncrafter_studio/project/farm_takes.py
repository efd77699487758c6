"""Takes that other processes (farm tasks, `generate` runs) register while the studio has the project open.

A farm task adds its take to project.json on disk under the project's write lock (pipeline/
shared_project.py); the studio holds the document in memory, with edits that may not be saved yet.
`FarmTakeWatcher` brings the two together without losing either side's work:

- `poll()` looks at project.json's identity (size, mtime, inode: one stat, cheap enough for a timer);
  when it changed, it reads the file under the write lock and merges every take the open document
  has never seen, as one undoable step ("3 takes from the farm"). Takes the animator deleted here
  are not brought back; a farm take whose label is already used here (an unsaved take) gets the
  next free one; one whose key pair no longer exists here is reported and left on disk.
- `save()` is the studio's save: under the write lock it merges what arrived since the last poll,
  then writes, so a take registered a moment before the save is never overwritten.
Merging into a document without unsaved edits leaves it without unsaved edits: disk already has them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

from ..core.errors import StudioError
from .commands import AddTake, Compound
from .document import Take
from .locking import project_write_lock
from .project import Project
from .serialize import read_document

log = logging.getLogger(__name__)

POLL_LOCK_S = 2.0  # a poll waits this long for a farm task's short write, then tries again later


@dataclass
class Arrivals:
    """What one poll merged, for the message the studio shows."""

    takes: list[Take] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # take ids whose key pair is gone here

    @property
    def message(self) -> str:
        parts = []
        if self.takes:
            n = len(self.takes)
            parts.append(f"{n} new take{'s' if n != 1 else ''} from the farm")
        if self.skipped:
            n = len(self.skipped)
            parts.append(f"{n} farm take{'s' if n != 1 else ''} for key pairs removed here, left on disk")
        return "; ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.takes or self.skipped)


def _identity(path: os.PathLike) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


class FarmTakeWatcher:
    """Watches one open project's file for takes other processes registered (see the module doc)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._seen: set[str] = set(project.shot.takes) | project.stack.referenced_take_ids()
        self._skipped: set[str] = set()
        self._identity = _identity(project.project_file)

    def changed(self) -> bool:
        return _identity(self.project.project_file) != self._identity

    def poll(self) -> Arrivals:
        """Merge takes registered on disk since the last look; empty when nothing changed."""
        if not self.changed():
            return Arrivals()
        try:
            with project_write_lock(self.project.folder, timeout_s=POLL_LOCK_S):
                return self._merge_locked()
        except StudioError as exc:  # busy, or a file being replaced: the next poll tries again
            log.debug("Could not look at %s now: %s", self.project.project_file, exc)
            return Arrivals()

    def save(self) -> Arrivals:
        """Save the open document after merging what the farm registered; what was merged is returned."""
        with project_write_lock(self.project.folder):
            arrived = self._merge_locked()
            self.project.save()
            self._identity = _identity(self.project.project_file)
        return arrived

    def _merge_locked(self) -> Arrivals:
        project = self.project
        identity = _identity(project.project_file)
        shot_on_disk, _envelope = read_document(project.project_file, project.folder)
        self._identity = identity
        self._seen |= set(project.shot.takes) | project.stack.referenced_take_ids()
        arrived = Arrivals()
        commands = []
        for take_id, take in shot_on_disk.takes.items():
            if take_id in self._seen or take_id in self._skipped:
                continue
            if take.start_key not in project.shot.drawings or take.end_key not in project.shot.drawings:
                self._skipped.add(take_id)
                arrived.skipped.append(take_id)
                continue
            take = dataclasses.replace(take, label=self._free_label(take, [t for t in arrived.takes]))
            segment = project.shot.segments.get((take.start_key, take.end_key))
            commands.append(AddTake(take, activate=segment is None or segment.active_take is None))
            arrived.takes.append(take)
            self._seen.add(take_id)
        if commands:
            was_clean = project.stack.is_clean
            n = len(commands)
            project.push(Compound(f"{n} take{'s' if n != 1 else ''} from the farm", commands))
            if was_clean:  # the file already holds them: nothing here is unsaved
                project.stack.set_clean()
        if arrived:
            log.info("%s (%s)", arrived.message, project.folder)
        return arrived

    def _free_label(self, take: Take, arriving: list[Take]) -> str:
        """The take's label, or the next free T<n> of its segment when an unsaved take here has it."""
        shot = self.project.shot
        key = (take.start_key, take.end_key)
        segment = shot.segments.get(key)
        used = {shot.takes[t].label for t in (segment.take_ids if segment else []) if t in shot.takes}
        used |= {t.label for t in arriving if (t.start_key, t.end_key) == key}
        if take.label not in used:
            return take.label
        numbers = [int(label[1:]) for label in used if label[:1] == "T" and label[1:].isdigit()]
        n = max([segment.takes_made if segment else 0, *numbers]) + 1
        while f"T{n}" in used:
            n += 1
        return f"T{n}"
