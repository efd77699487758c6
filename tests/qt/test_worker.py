"""The single background worker: order, progress, cancel, errors, and a responsive UI thread."""

from __future__ import annotations

import threading
import time

import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.core.progress import ProgressEvent, StageReporter
from tooncrafter_studio.qt.worker import Worker, running_threads


def slow_task(steps: int, delay: float, record: list | None = None, name: str = ""):
    def fn(progress, cancel):
        if record is not None:
            record.append((name, threading.get_ident()))
        reporter = StageReporter(progress, cancel, "denoise", steps)
        reporter.start()
        for _ in range(steps):
            time.sleep(delay)
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
        worker.submit(name, slow_task(2, 0.005, record, name), on_done=lambda task: finished.append(task.result))
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=5000)
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

    def watch(task):
        task.signals.progress.connect(on_progress)
        watched.append(task)

    watched = []
    worker.submit("p", slow_task(5, 0.05), watch=watch)
    qtbot.waitUntil(lambda: watched[0].state == "done", timeout=5000)
    qtbot.waitUntil(lambda: bool(events) and events[-1].done == 5, timeout=5000)
    assert seen_threads == {threading.get_ident()}
    assert events[0].stage == "denoise" and events[-1].done == 5 and events[-1].total == 5


def test_cancel_running_task_while_ui_stays_responsive(qtbot, worker):
    task = worker.submit("slow", slow_task(400, 0.01))
    qtbot.waitUntil(lambda: task.state == "running", timeout=3000)
    # the UI thread keeps processing events while the task runs: a timer fires on time
    ticks = []
    start = time.perf_counter()
    qtbot.waitUntil(lambda: (ticks.append(time.perf_counter()) or time.perf_counter() - start > 0.2), timeout=2000)
    assert len(ticks) > 3
    with qtbot.waitSignal(task.signals.ended, timeout=3000):
        worker.cancel(task)
    assert task.state == "cancelled"
    assert task.last_event is not None and task.last_event.done < 400


def test_cancel_queued_task_never_starts(qtbot, worker):
    started = []
    def watch(task):
        task.signals.started.connect(lambda t: started.append(t.label))

    first = worker.submit("first", slow_task(20, 0.01), watch=watch)
    second = worker.submit("second", slow_task(2, 0.01), watch=watch)
    worker.cancel(second)
    assert second.state == "cancelled"
    qtbot.waitUntil(lambda: first.state == "done", timeout=5000)
    qtbot.wait(50)
    assert started == ["first"]


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
    qtbot.waitUntil(lambda: len(failures) == 2, timeout=5000)
    assert failures[0][0] == "The start key frame.0001.png is unreadable."
    assert "InputError" in failures[0][1]
    assert failures[1][0].startswith("Unexpected error: ZeroDivisionError")
    assert "Traceback" in failures[1][1]
    # the thread survived both
    ok = worker.submit("ok", slow_task(1, 0.0))
    qtbot.waitUntil(lambda: ok.state == "done", timeout=5000)


def test_shutdown_cancels_and_waits(qtbot):
    worker = Worker()
    task = worker.submit("long", slow_task(10_000, 0.01))
    qtbot.waitUntil(lambda: task.state == "running", timeout=3000)
    start = time.perf_counter()
    assert worker.shutdown(5000)
    assert time.perf_counter() - start < 2.0
    assert running_threads() == []
    assert task.cancel.cancelled


def test_each_task_reports_only_to_its_own_listeners(qtbot, worker):
    """No broadcast: a listener of one task never hears of another (the Orange3 pattern)."""
    heard: list[str] = []

    def watch(task):
        task.signals.ended.connect(lambda t: heard.append(t.label))

    reported: list[str] = []
    worker.submit("mine", slow_task(1, 0.0), watch=watch)
    worker.submit("other", slow_task(1, 0.0), on_done=lambda t: reported.append(t.label))
    qtbot.waitUntil(lambda: reported == ["other"], timeout=5000)  # its end was delivered, and after mine
    assert heard == ["mine"]
