"""Keeps the suite honest on any machine: no test waits a guessed delay for something to happen.

A test that sleeps "long enough" passes at one speed only: too short on a loaded CI machine, too long
(the thing already happened) on a quiet one. Tests wait for the event itself: `waiting.wait_for`,
`qtbot.waitUntil`/`waitSignal`, a line from a child process, an event a fake engine blocks on. A poll
interval inside such a wait is marked with the word "poll" on its line.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DELAYS = re.compile(r"\btime\.sleep\(|\bqtbot\.wait\(|\bqWait\(|\bQTest\.qWait\(")


def delays_in(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if DELAYS.search(line) and "poll" not in line]


def test_no_test_sleeps_to_wait_for_something():
    found = [f"{path.relative_to(TESTS)}:{number}: {line}"
             for path in sorted(TESTS.rglob("*.py")) if path.name not in {"waiting.py", Path(__file__).name}
             for number, line in delays_in(path.read_text(encoding="utf-8"))]
    assert found == [], "wait for the event (waiting.wait_for, qtbot.waitUntil), not a delay:\n" + "\n".join(found)


def test_the_check_sees_a_delay():
    assert delays_in("    time.sleep(2.0)  # inside the engine by now\n") == [(1, "time.sleep(2.0)  # inside the engine by now")]
    assert delays_in("qtbot.wait(50)\n") and delays_in('code = "import time; time.sleep(60)"\n')
    assert delays_in("        time.sleep(0.02)  # poll for the release\n") == []
