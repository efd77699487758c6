"""One background thread that runs long tasks (generation, export) one at a time.

The UI thread only ever queues work and receives signals: it never waits on the worker except
in `shutdown()` at close, after cancelling. A task is a plain function
`fn(progress, cancel) -> result` (the Orange3 pattern: the progress callback raises `Cancelled`
once the token is set), so the same `pipeline.run_job` the CLI uses runs here unchanged.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, QThreadPool, QTimer, Signal

from ..core.errors import Cancelled, StudioError
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent

log = logging.getLogger(__name__)

TaskFunction = Callable[[ProgressCallback, CancelToken], Any]

_ids = itertools.count(1)
_live_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


_niced = threading.local()


BACKGROUND_NICENESS = int(os.environ.get("TOONCRAFTER_STUDIO_NICE", "10"))


def lower_thread_priority(niceness: int | None = None) -> None:
    """Make the calling background thread yield the CPU to the UI thread (Linux: per-thread nice;
    elsewhere Qt's thread priority). Done once per thread; failures only cost responsiveness."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    niceness = BACKGROUND_NICENESS if niceness is None else niceness
    if niceness <= 0:
        return
    try:
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        else:
            current = QThread.currentThread()
            if current is not None:
                current.setPriority(QThread.Priority.LowPriority)
    except (OSError, AttributeError, RuntimeError) as exc:
        log.debug("could not lower a background thread's priority: %s", exc)


_live_pools: weakref.WeakSet[QThreadPool] = weakref.WeakSet()


def running_threads() -> list[QObject]:
    """QThreads started by this package that still run, and thread pools still running a task
    (tests assert there are none when a window has closed)."""
    alive = [t for t in list(_live_threads) + list(_live_pools) if shiboken6.isValid(t)]
    return [t for t in alive if (t.isRunning() if isinstance(t, QThread) else t.activeThreadCount() > 0)]


def track_thread(thread: QThread) -> None:
    _live_threads.add(thread)


def track_pool(pool: QThreadPool) -> None:
    _live_pools.add(pool)


class TaskSignals(QObject):
    """One task's own signals: whoever submitted the task (and the panel it asked to show it) listens
    here, so nobody filters other people's tasks. Emitted from the worker thread, received queued."""

    started = Signal(object)  # task
    progress = Signal(object, object)  # task, ProgressEvent
    ended = Signal(object)  # task: done, failed or cancelled (see task.state, .error, .details)


@dataclass(eq=False)
class Task:
    label: str
    fn: TaskFunction
    payload: Any = None  # whatever the submitter wants back (e.g. the job)
    # Called on the UI thread once the task ended (done, failed or cancelled, however it happened),
    # after the task's other listeners: how a task reports back to whoever started it.
    on_done: Callable[[Task], None] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    cancel: CancelToken = field(default_factory=CancelToken)
    signals: TaskSignals = field(default_factory=TaskSignals)
    state: str = "queued"  # queued | running | done | failed | cancelled
    last_event: ProgressEvent | None = None
    result: Any = None
    error: str = ""
    details: str = ""
    started_at: float | None = None
    finished_at: float | None = None


class _Thread(QThread):
    """Pulls tasks off a queue and runs them; talks to the UI only through the owner's signals."""

    def __init__(self, owner: Worker) -> None:
        super().__init__()
        self._owner = owner
        self.setObjectName("studio-worker")

    def run(self) -> None:  # worker thread
        # Not niced: a job holds the GIL in stretches, and a starved GIL holder would stall the UI
        # (priority inversion); the pool threads that decode images are niced instead.
        owner = self._owner
        while True:
            task = owner._queue.get()
            if task is None:
                return
            with owner._lock:
                if task.state != "queued":  # cancelled while it waited: already reported
                    continue
                task.state = "running"
            task.started_at = time.monotonic()
            task.signals.started.emit(task)
            reporter = _ProgressRelay(owner, task)
            try:
                result = task.fn(reporter, task.cancel)
                task.cancel.raise_if_cancelled()
            except Cancelled:
                task.state = "cancelled"
                task.finished_at = time.monotonic()
                task.signals.ended.emit(task)
            except StudioError as exc:
                task.state = "failed"
                task.error = str(exc) or type(exc).__name__
                task.details = traceback.format_exc()
                task.finished_at = time.monotonic()
                task.signals.ended.emit(task)
            except BaseException as exc:  # a bug: keep the thread alive and report it readably
                log.exception("Task %r failed", task.label)
                task.state = "failed"
                task.error = f"Unexpected error: {type(exc).__name__}: {exc}"
                task.details = traceback.format_exc()
                task.finished_at = time.monotonic()
                task.signals.ended.emit(task)
            else:
                task.state = "done"
                task.result = result
                task.finished_at = time.monotonic()
                task.signals.ended.emit(task)


class _ProgressRelay:
    """The progress callback handed to a task: forwards events as signals, at most ~30 per second
    (stage changes, the last step and previews always go through), and raises once cancelled."""

    MIN_INTERVAL_S = 1 / 30

    def __init__(self, owner: Worker, task: Task) -> None:
        self.owner = owner
        self.task = task
        self._last_emit = 0.0
        self._last_stage = ""

    def __call__(self, event: ProgressEvent) -> None:
        self.task.last_event = event
        now = time.monotonic()
        important = (event.stage != self._last_stage or event.preview is not None
                     or (event.total and event.done >= event.total))
        if important or now - self._last_emit >= self.MIN_INTERVAL_S:
            self._last_emit = now
            self._last_stage = event.stage
            self.task.signals.progress.emit(self.task, event)
        self.task.cancel.raise_if_cancelled()


class Worker(QObject):
    """A queue of tasks and the single QThread that runs them, in order.

    Each task carries its own signals (`task.signals`); they arrive in the UI thread, queued.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: _Thread | None = None
        self.tasks: list[Task] = []

    # -- queueing (UI thread)
    def submit(self, label: str, fn: TaskFunction, payload: Any = None,
               on_done: Callable[[Task], None] | None = None,
               watch: Callable[[Task], None] | None = None) -> Task:
        """Queue `fn`; `on_done(task)` runs on the UI thread when it ends (see `task.state`).

        `watch(task)` runs before the task is queued: where the submitter connects to
        `task.signals` (start, progress, end) with no chance of missing the first of them.
        """
        task = Task(label, fn, payload, on_done=on_done)
        task.signals.ended.connect(self._report)
        if watch is not None:
            watch(task)
        self.tasks.append(task)
        self._ensure_thread()
        self._queue.put(task)
        return task

    def cancel(self, task: Task) -> None:
        """Ask a task to stop. A queued task never starts; a running one stops at its next step."""
        task.cancel.cancel()
        with self._lock:
            was_queued = task.state == "queued"
            if was_queued:
                task.state = "cancelled"
        if was_queued:
            task.signals.ended.emit(task)

    def cancel_all(self) -> None:
        for task in self.tasks:
            if task.state in ("queued", "running"):
                self.cancel(task)

    def active_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.state in ("queued", "running")]

    @property
    def busy(self) -> bool:
        return bool(self.active_tasks())

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.isRunning():
            self._thread = _Thread(self)
            track_thread(self._thread)
            self._thread.start()

    def _report(self, task: Task) -> None:
        callback, task.on_done = task.on_done, None  # once
        if callback is not None:  # after the task's other listeners (panels, previews) ran
            QTimer.singleShot(0, self, lambda: self._call_back(callback, task))

    @staticmethod
    def _call_back(callback: Callable[[Task], None], task: Task) -> None:
        try:
            callback(task)
        except Exception:  # a submitter's bug must not break the other listeners
            log.exception("The completion handler of %r failed", task.label)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait for the thread to end (used when the window closes).

        Returns False when the thread did not stop in time (it is then left to finish on its own).
        """
        self.cancel_all()
        thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        stopped = thread.wait(timeout_ms)
        if stopped:
            self._thread = None
        else:
            log.warning("The worker did not stop within %.0f s", timeout_ms / 1000)
        return stopped
