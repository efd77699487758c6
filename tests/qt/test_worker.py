"""The single background worker: order, progress, cancel, errors, and a responsive UI thread."""

from __future__ import annotations

import threading
import time

import pytest
from engines_for_tests import StepGate
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.core.progress import ProgressEvent, StageReporter
from tooncrafter_studio.qt.worker import Worker, running_threads


def slow_task(steps: int, gate: StepGate | None = None, record: list | None = None, name: str = ""):
    """A task of `steps` steps; with a gate, each step waits until the test lets it through."""
    def fn(progress, cancel):
        if record is not None:
            record.append((name, threading.get_ident()))
        reporter = StageReporter(progress, cancel, "denoise", steps)
        reporter.start()
        for _ in range(steps):
            if gate is not None:
                gate.pass_step(cancel)
            reporter.step()
        return name or steps
    return fn


@pytest.fixture
def worker(qtbot):
    w = Worker()
    yield w
    assert w.shutdown(10_000)


def test_tasks_run_in_order_on_one_thread_off_the_ui_thread(qtbot, worker):
    record: list = []
    finished = []
    worker.task_finished.connect(lambda task, result: finished.append(result))
    for name in "abc":
        worker.submit(name, slow_task(2, record=record, name=name))
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=PATIENCE_MS)
    assert finished == ["a", "b", "c"]
    threads = {ident for _, ident in record}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert [t.state for t in worker.tasks] == ["done"] * 3


def test_progress_events_reach_the_ui_thread(qtbot, worker):
    events: list[ProgressEvent] = []
    seen_threads = set()

    def on_progress(task, event):
        seen_threads.add(threading.get_ident())
        events.append(event)

    worker.task_progress.connect(on_progress)
    with qtbot.waitSignal(worker.task_finished, timeout=PATIENCE_MS):
        worker.submit("p", slow_task(5))
    assert seen_threads == {threading.get_ident()}
    assert events[0].stage == "denoise" and events[-1].done == 5 and events[-1].total == 5


def test_cancel_running_task_while_ui_stays_responsive(qtbot, worker):
    gate = StepGate(tokens=3)
    task = worker.submit("slow", slow_task(400, gate))
    qtbot.waitUntil(lambda: task.last_event is not None and task.last_event.done == 3, timeout=PATIENCE_MS)
    # the UI thread keeps processing events while the task runs: a timer fires on time
    ticks = []
    start = time.perf_counter()
    qtbot.waitUntil(lambda: (ticks.append(time.perf_counter()) or time.perf_counter() - start > 0.2), timeout=PATIENCE_MS)
    assert len(ticks) > 3
    with qtbot.waitSignal(worker.task_cancelled, timeout=PATIENCE_MS):
        worker.cancel(task)
    assert task.state == "cancelled"
    assert task.last_event is not None and task.last_event.done == 3  # stopped where it was


def test_cancel_queued_task_never_starts(qtbot, worker):
    started = []
    worker.task_started.connect(lambda t: started.append(t.label))
    gate = StepGate()
    first = worker.submit("first", slow_task(20, gate))
    second = worker.submit("second", slow_task(2))
    third = worker.submit("third", slow_task(1))
    worker.cancel(second)
    assert second.state == "cancelled"
    gate.open()
    # the worker runs its queue in order: once the third is done, the second had its turn
    qtbot.waitUntil(lambda: third.state == "done", timeout=PATIENCE_MS)
    assert first.state == "done" and started == ["first", "third"]


def test_errors_become_readable_messages_with_details(qtbot, worker):
    def bad(progress, cancel):
        raise InputError("The start key frame.0001.png is unreadable.")

    def bug(progress, cancel):
        return 1 / 0

    failures = []
    worker.task_failed.connect(lambda task, message, details: failures.append((message, details)))
    worker.submit("bad", bad)
    worker.submit("bug", bug)
    qtbot.waitUntil(lambda: len(failures) == 2, timeout=PATIENCE_MS)
    assert failures[0][0] == "The start key frame.0001.png is unreadable."
    assert "InputError" in failures[0][1]
    assert failures[1][0].startswith("Unexpected error: ZeroDivisionError")
    assert "Traceback" in failures[1][1]
    # the thread survived both
    with qtbot.waitSignal(worker.task_finished, timeout=PATIENCE_MS):
        worker.submit("ok", slow_task(1))


def test_shutdown_cancels_and_waits(qtbot):
    worker = Worker()
    task = worker.submit("long", slow_task(10_000, StepGate()))  # never finishes by itself
    qtbot.waitUntil(lambda: task.state == "running", timeout=PATIENCE_MS)
    assert worker.shutdown(PATIENCE_MS)  # returns only once the cancelled task has stopped
    assert running_threads() == []
    assert task.cancel.cancelled
