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


@dataclass(eq=False)
class Task:
    label: str
    fn: TaskFunction
    kind: str = "task"  # "generate", "export", ...
    payload: Any = None  # whatever the submitter wants back with the signals (e.g. the job)
    # Called on the UI thread once the task ended (done, failed or cancelled, however it happened):
    # how a task reports back to whoever started it, instead of listeners filtering on `kind`.
    on_done: Callable[[Task], None] | None = None
    id: int = field(default_factory=lambda: next(_ids))
    cancel: CancelToken = field(default_factory=CancelToken)
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
            owner.task_started.emit(task)
            reporter = _ProgressRelay(owner, task)
            try:
                result = task.fn(reporter, task.cancel)
                task.cancel.raise_if_cancelled()
            except Cancelled:
                task.state = "cancelled"
                task.finished_at = time.monotonic()
                owner.task_cancelled.emit(task)
            except StudioError as exc:
                task.state = "failed"
                task.error = str(exc) or type(exc).__name__
                task.details = traceback.format_exc()
                task.finished_at = time.monotonic()
                owner.task_failed.emit(task, task.error, task.details)
            except BaseException as exc:  # a bug: keep the thread alive and report it readably
                log.exception("Task %r failed", task.label)
                task.state = "failed"
                task.error = f"Unexpected error: {type(exc).__name__}: {exc}"
                task.details = traceback.format_exc()
                task.finished_at = time.monotonic()
                owner.task_failed.emit(task, task.error, task.details)
            else:
                task.state = "done"
                task.result = result
                task.finished_at = time.monotonic()
                owner.task_finished.emit(task, result)


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
            self.owner.task_progress.emit(self.task, event)
        self.task.cancel.raise_if_cancelled()


class Worker(QObject):
    """A queue of tasks and the single QThread that runs them, in order.

    Signals arrive in the thread that owns this object (the UI thread), queued.
    """

    task_queued = Signal(object)
    task_started = Signal(object)
    task_progress = Signal(object, object)  # task, ProgressEvent
    task_finished = Signal(object, object)  # task, result
    task_failed = Signal(object, str, str)  # task, message, details
    task_cancelled = Signal(object)
    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: _Thread | None = None
        self.tasks: list[Task] = []
        self.task_finished.connect(self._report)
        self.task_failed.connect(self._report)
        self.task_cancelled.connect(self._report)
        for signal in (self.task_finished, self.task_failed, self.task_cancelled):
            signal.connect(self._check_idle)

    # -- queueing (UI thread)
    def submit(self, label: str, fn: TaskFunction, kind: str = "task", payload: Any = None,
               on_done: Callable[[Task], None] | None = None) -> Task:
        """Queue `fn`; `on_done(task)` runs on the UI thread when it ends (see `task.state`)."""
        task = Task(label, fn, kind, payload, on_done=on_done)
        self.tasks.append(task)
        self._ensure_thread()
        self._queue.put(task)
        self.task_queued.emit(task)
        return task

    def cancel(self, task: Task) -> None:
        """Ask a task to stop. A queued task never starts; a running one stops at its next step."""
        task.cancel.cancel()
        with self._lock:
            was_queued = task.state == "queued"
            if was_queued:
                task.state = "cancelled"
        if was_queued:
            self.task_cancelled.emit(task)

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

    def _report(self, task: Task, *_args: Any) -> None:
        callback, task.on_done = task.on_done, None  # once, whichever signal came
        if callback is not None:  # after the other listeners of this signal (panels, previews) ran
            QTimer.singleShot(0, self, lambda: self._call_back(callback, task))

    @staticmethod
    def _call_back(callback: Callable[[Task], None], task: Task) -> None:
        try:
            callback(task)
        except Exception:  # a submitter's bug must not break the other listeners
            log.exception("The completion handler of %r failed", task.label)

    def _check_idle(self, *_args: Any) -> None:
        if not self.busy:
            self.idle.emit()

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
