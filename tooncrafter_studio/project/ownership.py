"""Who has a project open for writing: one owner at a time, told apart by host and process.

The studio (while a project is open) and the CLI commands that change a project (keys, generate,
relink) claim it with a small file `.owner.lock` in the project folder: {"host", "pid", "started",
"what", "since"}. A second claimant is refused with a `ProjectLocked` error saying who holds it,
instead of two writers racing over project.json. A lock left by a process that died on this
host (its PID is gone, or now belongs to a process started later) is stale and is taken over; a
lock from another host cannot be checked from here, so the message says how to clear it.

Claims are re-entrant within a process (the app reopening its own project, tests): a count per
folder, the file goes when the last claim is released. Shared writers (`generate` tasks filling one
project side by side, coordinated by short write locks) each leave a marker
`.owner-shared.<host>.<pid>.lock` instead: they exclude an exclusive owner and are excluded by one,
but not each other. A shared writer keeps its marker fresh (its modification time, every
HEARTBEAT_S): a marker of another host not refreshed for STALE_SHARED_S belongs to a farm task that
was killed with its host, and is removed like a dead process's marker here. Temporary files of killed saves are removed only by an exclusive claimant that
finds no live shared writer. Short locks around single writes by farm
tasks are another matter (project/locking.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import ProjectLocked
from ..core.fsio import read_regular_file

log = logging.getLogger(__name__)

LOCK_FILE = ".owner.lock"
SHARED_PREFIX = ".owner-shared."  # + host.pid.lock: one marker per shared writer (generate on a farm)

HEARTBEAT_S = 60.0  # how often a shared writer touches its marker
STALE_SHARED_S = 15 * 60.0  # a marker of another host untouched this long is a killed task's

_held: dict[Path, int] = {}  # lock file -> claims by this process
_held_lock = threading.Lock()
_open: list[Claim] = []  # claims not released yet, for release_all
_open_lock = threading.Lock()
MAX_PID = 2**31 - 1  # PIDs are C ints everywhere; a lock file's larger number names no process


def _host() -> str:
    return socket.gethostname() or "this computer"


def _process_start(pid: int) -> str:
    """When a process started (Linux: clock ticks since boot), to tell a reused PID; "" elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, started: str) -> bool:
    if not 0 < pid <= MAX_PID:  # os.kill would overflow on an absurd PID written into a lock file
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    except OSError:
        return True
    return not (started and _process_start(pid) and _process_start(pid) != started)


def read_owner(folder: str | os.PathLike) -> dict | None:
    """The current lock's content, or None when nobody holds the project (or the file is unreadable)."""
    return _read_record(Path(folder) / LOCK_FILE)


def _read_record(path: Path) -> dict | None:
    try:  # regular and small only: a planted FIFO must not hang whoever opens the project
        data = json.loads(read_regular_file(path, 1 << 16, ProjectLocked, "lock file"))
    except (OSError, ValueError, RecursionError, ProjectLocked):
        return None
    return data if isinstance(data, dict) else None


def _ours(owner: dict) -> bool:
    return owner.get("pid") == os.getpid() and owner.get("host") == _host()


def _shared_marker(root: Path) -> Path:
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in _host())[:64]
    return root / f"{SHARED_PREFIX}{host}.{os.getpid()}.lock"


def shared_writers(root: Path) -> list[dict]:
    """Live shared writers of other processes (their markers); markers of dead ones are removed."""
    live = []
    for marker in root.glob(f"{SHARED_PREFIX}*.lock"):
        owner = _read_record(marker)
        if owner is not None and _ours(owner):
            continue
        if owner is None and _age_s(marker) < 5.0:
            live.append({"what": "a command that is starting", "host": "?", "pid": "?", "file": str(marker)})
        elif owner is None or is_stale(owner) or (owner.get("host") != _host()
                                                  and _age_s(marker) > STALE_SHARED_S):
            log.info("Removing the marker of a shared writer that is gone: %s (%s)", marker, owner)
            with contextlib.suppress(OSError):
                marker.unlink()
        else:
            live.append({**owner, "file": str(marker)})
    return live


def refresh_shared_markers() -> None:
    """Touch the shared markers this process holds, so other hosts see its tasks are alive."""
    with _held_lock:
        markers = [path for path in _held if path.name.startswith(SHARED_PREFIX)]
    for marker in markers:
        with contextlib.suppress(OSError):
            os.utime(marker)


def _heartbeat() -> None:
    while not _heartbeat_stop.wait(HEARTBEAT_S):
        refresh_shared_markers()


_heartbeat_stop = threading.Event()
_heartbeat_thread: threading.Thread | None = None


def _start_heartbeat() -> None:
    global _heartbeat_thread
    if _heartbeat_thread is None or not _heartbeat_thread.is_alive():
        _heartbeat_thread = threading.Thread(target=_heartbeat, name="shared-marker-heartbeat", daemon=True)
        _heartbeat_thread.start()


def _write_record(path: Path, record: dict) -> bool:
    """Create `path` holding `record`; False when it exists. A file that cannot be written (a read-only
    or full disk) counts as written: nobody can write the project there anyway."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    except OSError as exc:
        log.debug("No lock file %s: %s", path, exc)
        return True
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
    except OSError as exc:  # a full disk: the command's own writes will say so clearly
        log.debug("Could not write %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
    return True


def is_stale(owner: dict) -> bool:
    """A lock of this host whose process is gone."""
    if owner.get("host") != _host():
        return False
    pid = owner.get("pid")
    valid = isinstance(pid, int) and not isinstance(pid, bool)
    return not valid or not _alive(pid, str(owner.get("started", ""))[:40])


def _clip(value: object, limit: int = 80) -> str:
    """A lock file's field as one short line: the file is outside text, its fields may be anything."""
    text = " ".join(str(value).split()) if isinstance(value, (str, int, float)) else "?"
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(folder: Path, owner: dict) -> str:
    what = _clip(owner.get("what") or "another program")
    host, pid = owner.get("host", "?"), _clip(owner.get("pid", "?"), 20)
    where = "on this computer" if host == _host() else f"on {_clip(host, 64)}"
    held = owner.get("file") or str(folder / LOCK_FILE)  # the very file that holds the claim
    if host == _host():
        advice = "close it there first"
    elif Path(held).name.startswith(SHARED_PREFIX):
        advice = (f"wait for it to finish; if that task was killed, its marker {held} goes by itself "
                  f"{int(STALE_SHARED_S // 60)} minutes after, or delete it now")
    else:
        advice = f"close it there first; if that computer crashed, delete {held}"
    return f"{folder} is open in {what} {where} (process {pid}, since {_clip(owner.get('since', '?'), 40)}); {advice}."


@dataclass
class Claim:
    """A held claim; `release()` (or leaving a `with` block) gives it up."""

    folder: Path
    first: bool  # the first exclusive claim of this process, and no shared writer runs: nothing is in flight
    path: Path | None = None  # the lock file or shared marker (default: the lock file)
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with _open_lock, contextlib.suppress(ValueError):
            _open.remove(self)
        path = self.path or self.folder / LOCK_FILE
        with _held_lock:
            count = _held.get(path, 0) - 1
            if count > 0:
                _held[path] = count
                return
            _held.pop(path, None)
        owner = _read_record(path)
        if owner is not None and _ours(owner):
            with contextlib.suppress(OSError):
                path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def claim(folder: str | os.PathLike, what: str, shared: bool = False, admit_shared: bool = False) -> Claim:
    """Claim the project folder for writing (see the module docstring); raises ProjectLocked.

    shared: for writers that coordinate among themselves with short write locks (farm tasks running
    `generate` on different key pairs at once): they take no exclusive claim, but are still refused
    while an exclusive command holds the project.
    admit_shared: an exclusive claim that lets shared writers in (the studio, which merges the takes
    they register: project/farm_takes.py); other exclusive claimants are still refused.
    """
    root = Path(folder).resolve()
    record = {"host": _host(), "pid": os.getpid(), "started": _process_start(os.getpid()), "what": what,
              "since": datetime.now(UTC).isoformat(timespec="seconds")}
    if admit_shared and not shared:
        record["admits_shared"] = True
    return _claim_shared(root, record) if shared else _claim_exclusive(root, record)


def _claim_shared(root: Path, record: dict) -> Claim:
    """Marker first, then the look at the exclusive lock (the exclusive claimant does the reverse), so
    that two claimants at the same moment always see each other."""
    marker = _shared_marker(root)
    with _held_lock:
        if marker in _held:
            _held[marker] += 1
            return _track(Claim(root, first=False, path=marker))
        with contextlib.suppress(OSError):
            marker.unlink()  # ours from a count that was lost (same host and pid)
        _write_record(marker, record)
        _held[marker] = 1
    _start_heartbeat()
    held = _track(Claim(root, first=False, path=marker))
    owner = read_owner(root)
    if owner is not None and not is_stale(owner) and not _ours(owner) and not owner.get("admits_shared"):
        held.release()
        raise ProjectLocked(_describe(root, owner))
    return held


def _claim_exclusive(root: Path, record: dict) -> Claim:
    path = root / LOCK_FILE
    with _held_lock:
        if path in _held:
            _held[path] += 1
            return _track(Claim(root, first=False, path=path))
        for _attempt in range(3):
            if _write_record(path, record):
                break
            owner = read_owner(root)
            if owner is None and _age_s(path) < 5.0:  # being written by a claimant right now
                raise ProjectLocked(f"{root} is being opened by another program right now; try again.")
            if owner is None or is_stale(owner):
                # a dead owner, or a lock file cut short by a crash: take it over
                log.info("Taking over a stale lock of %s: %s", root, owner)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if _ours(owner):
                break  # ours, from a claim whose count was lost: keep it
            raise ProjectLocked(_describe(root, owner))
        else:
            raise ProjectLocked(_describe(root, read_owner(root) or {}))
        _held[path] = 1
    others = shared_writers(root)
    held = _track(Claim(root, first=not others, path=path))
    if others and not record.get("admits_shared"):
        held.release()
        raise ProjectLocked(_describe(root, others[0]))
    return held


def _age_s(path: Path) -> float:
    try:
        return datetime.now().timestamp() - path.stat().st_mtime
    except OSError:
        return 1e9


def _track(held: Claim) -> Claim:
    with _open_lock:
        _open.append(held)
    return held


def release_all() -> None:
    """Give up every claim this process still holds (the CLI, when a command ends)."""
    with _open_lock:
        claims = list(_open)
        _open.clear()
    for held in reversed(claims):
        held.release()
