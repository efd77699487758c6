"""Progress reporting and cancellation, shared by the CLI, the GUI worker and the engines.

A long operation takes a `ProgressCallback` and a `CancelToken`. It reports through
`callback(ProgressEvent)`; the callback may raise `Cancelled` to stop the work (the Orange3
pattern), and the operation also polls `cancel.raise_if_cancelled()` between steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # short human-readable stage name, e.g. "encode", "denoise", "decode", "write"
    done: int  # units finished in this stage
    total: int  # units in this stage (0 when unknown)
    message: str = ""
    eta_s: float | None = None  # estimated seconds left for the whole operation, when known
    preview: Any = None  # optional preview payload (e.g. a numpy image), engine-specific
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A callback that ignores every event."""


class CancelToken:
    """Thread-safe cancel flag; cheap to poll from a worker loop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class StageReporter:
    """Helper for an operation with one stage of `total` steps: counts, times and estimates ETA.

    Calls the callback, then checks the cancel token, so a cancel lands within one step.
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        cancel: CancelToken | None,
        stage: str,
        total: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback or no_progress
        self.cancel = cancel or CancelToken()
        self.stage = stage
        self.total = total
        self.done = 0
        self._clock = clock
        self._start = clock()

    def start(self, message: str = "") -> None:
        self.cancel.raise_if_cancelled()
        self.callback(ProgressEvent(self.stage, 0, self.total, message))

    def step(self, n: int = 1, message: str = "", preview: Any = None) -> None:
        self.done += n
        elapsed = self._clock() - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done and self.total else None
        self.callback(ProgressEvent(self.stage, self.done, self.total, message, eta, preview))
        self.cancel.raise_if_cancelled()
