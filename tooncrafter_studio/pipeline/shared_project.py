"""Adding takes to a project that other processes (farm tasks, other CLI runs) write at the same time.

A take's frames are written first, into the task's own staging folder (`takes/.tmp-<take id>/`,
renamed to `takes/<take id>/` when complete; see runner.py). Only then is the take registered:
under the project's write lock (project/locking.py) project.json is read afresh, the take is added
to what is on disk now (its label numbered there) and the document saved atomically. Two tasks
finishing together therefore both land; a task killed at any point leaves either no take or a
complete one, and never a torn project.json.

A farm task has a task id that stays the same when the farm re-runs it after a failure. Its take
id is derived from that id and the task id is kept in the take's provenance (`params["task_id"]`),
so a re-run finds its take already registered and stops, or finds only the frames of an attempt
killed before registering and replaces them: never two takes for one task.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import shutil
from pathlib import Path

from ..core.errors import InputError
from ..project.commands import AddTake
from ..project.document import Take
from ..project.locking import lock_path, project_write_lock
from ..project.project import TAKES_DIR, TEMP_PREFIX, Project
from .runner import JobResult, next_take_label

log = logging.getLogger(__name__)

TASK_ID_KEY = "task_id"
MAX_TASK_ID = 200


def check_task_id(task_id: str) -> str:
    text = task_id.strip()
    if not text or len(text) > MAX_TASK_ID or any(ord(c) < 32 for c in text):
        raise InputError(f"--task-id '{task_id}' should be 1 to {MAX_TASK_ID} printable characters, "
                         "e.g. shot010-s1-9-seed7.")
    return text


def task_take_id(task_id: str) -> str:
    """The take id of a farm task: the same for every attempt of the task."""
    return "f" + hashlib.sha256(check_task_id(task_id).encode("utf-8")).hexdigest()[:16]


def registered_take(project: Project, task_id: str) -> Take | None:
    """The take a task already registered in `project`, if any."""
    take = project.shot.takes.get(task_take_id(task_id))
    if take is not None:
        return take
    for take in project.shot.takes.values():
        if take.params.get(TASK_ID_KEY) == task_id:
            return take
    return None


def clear_failed_attempt(folder: Path, take_id: str) -> list[Path]:
    """Remove what an earlier, killed attempt of a task left: its staging folder and, when the
    take never got registered, its finished frames. Call only after `registered_take` said None."""
    removed = []
    for path in (folder / TAKES_DIR / f"{TEMP_PREFIX}{take_id}", folder / TAKES_DIR / take_id):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
            log.info("Removed %s, left by an earlier attempt of this task", path)
    return removed


def check_write_lock(folder: Path) -> None:
    """Take and release the project's write lock once, before any work: a lock file that is a link or
    not a plain file (ProjectError) or a holder that is stuck (ProjectLocked) is said at once, not after
    the generation. No lock file means nobody holds it: none is made before there is work to record
    (a command that is refused later must leave the folder as it found it)."""
    if not os.path.lexists(lock_path(folder)):
        return
    with project_write_lock(folder, record=False):
        pass


def commit_take(result: JobResult, task_id: str | None = None, activate: bool = True) -> tuple[Take, bool]:
    """Register a finished job's take in its project folder under the write lock.

    Returns (the take as registered, True) or, when the same task's take is already there,
    (that take, False). The job's in-memory project is not changed: project.json on disk is.
    """
    take = result.take
    folder = result.job.folder
    if take is None or folder is None:
        raise InputError("This job made no take to add to a project.")
    if task_id is not None:
        take.params[TASK_ID_KEY] = task_id
    with project_write_lock(folder):
        project = Project.open(folder)
        if task_id is not None:
            existing = registered_take(project, task_id)
            if existing is not None:
                return existing, False
        take.label = next_take_label(project, take.start_key, take.end_key)
        project.push(AddTake(take, activate=activate))
        project.save()
    result.applied = True
    return take, True


def record_take(project: Project, take: Take, was_clean: bool = False) -> bool:
    """Make a take the studio has just added to its open document durable at once.

    The take is added to project.json on disk the way a farm task adds one (under the write lock,
    project.json read afresh, saved atomically), so a crash before the next save or autosave
    loses no finished take; the document's other unsaved edits stay unsaved. Then the open document
    is reconciled: clean again if it was clean before the take, else its recovery copy is rewritten
    (it must stay newer than project.json to be offered after a crash). Returns False when
    project.json already listed the take. Raises StudioError when it cannot be written.
    """
    segment = project.shot.segments.get((take.start_key, take.end_key))
    active = segment is not None and segment.active_take == take.id
    with project_write_lock(project.folder):
        on_disk = Project.open(project.folder)
        added = take.id not in on_disk.shot.takes
        if added:
            on_disk.push(AddTake(copy.deepcopy(take), activate=active))
            on_disk.save()
    if was_clean:
        project.saved_at = on_disk.saved_at
        project.stack.set_clean()
    else:
        project.autosave(force=True)
    return added


def discard_take_files(folder: Path, take_id: str) -> None:
    """Frames of a take that was not registered (a duplicate of a registered task)."""
    with contextlib.suppress(OSError):
        shutil.rmtree(folder / TAKES_DIR / take_id)
