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
    for name in "abc":
        worker.submit(name, slow_task(2, record=record, name=name), on_done=lambda task: finished.append(task.result))
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

    ended = []
    worker.submit("p", slow_task(5), watch=lambda task: task.signals.progress.connect(on_progress),
                  on_done=ended.append)  # on_done runs after every signal of the task was delivered
    qtbot.waitUntil(lambda: bool(ended), timeout=PATIENCE_MS)
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
    with qtbot.waitSignal(task.signals.ended, timeout=PATIENCE_MS):
        worker.cancel(task)
    assert task.state == "cancelled"
    assert task.last_event is not None and task.last_event.done == 3  # stopped where it was


def test_cancel_queued_task_never_starts(qtbot, worker):
    started = []

    def watch(task):
        task.signals.started.connect(lambda t: started.append(t.label))

    gate = StepGate()
    first = worker.submit("first", slow_task(20, gate), watch=watch)
    second = worker.submit("second", slow_task(2), watch=watch)
    third = worker.submit("third", slow_task(1), watch=watch)
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
    def failed(task):
        assert task.state == "failed"
        failures.append((task.error, task.details))

    worker.submit("bad", bad, on_done=failed)
    worker.submit("bug", bug, on_done=failed)
    qtbot.waitUntil(lambda: len(failures) == 2, timeout=PATIENCE_MS)
    assert failures[0][0] == "The start key frame.0001.png is unreadable."
    assert "InputError" in failures[0][1]
    assert failures[1][0].startswith("Unexpected error: ZeroDivisionError")
    assert "Traceback" in failures[1][1]
    # the thread survived both
    ok = worker.submit("ok", slow_task(1))
    qtbot.waitUntil(lambda: ok.state == "done", timeout=PATIENCE_MS)


def test_shutdown_cancels_and_waits(qtbot):
    worker = Worker()
    task = worker.submit("long", slow_task(10_000, StepGate()))  # never finishes by itself
    qtbot.waitUntil(lambda: task.state == "running", timeout=PATIENCE_MS)
    assert worker.shutdown(PATIENCE_MS)  # returns only once the cancelled task has stopped
    assert running_threads() == []
    assert task.cancel.cancelled


def test_each_task_reports_only_to_its_own_listeners(qtbot, worker):
    """No broadcast: a listener of one task never hears of another (the Orange3 pattern)."""
    heard: list[str] = []
    reported: list[str] = []

    def watch(task):
        task.signals.ended.connect(lambda t: heard.append(t.label))

    worker.submit("mine", slow_task(1), watch=watch)
    worker.submit("other", slow_task(1), on_done=lambda t: reported.append(t.label))
    qtbot.waitUntil(lambda: reported == ["other"], timeout=PATIENCE_MS)  # its end was delivered, after mine
    assert heard == ["mine"]
