"""Waiting in tests for the event itself, never for a guessed delay.

`wait_for` polls a condition until it holds. Its ceiling only matters when a test is going to fail
anyway, so it is generous: a loaded CI machine is slow, not wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PATIENCE_S = 120.0


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = PATIENCE_S) -> None:
    """Return as soon as `condition()` is true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)  # the poll interval, not a guess at how long anything takes

# A ceiling for a child process that ends on its own (a build, a CLI run, a script): far above what
# it takes on a loaded 2-core machine, there only so that a hung process fails its test with its
# output instead of stalling the whole run.
PROCESS_CEILING_S = 1800.0
