"""Engines that misbehave on purpose: slow (to cancel while the UI runs) and unavailable."""

from __future__ import annotations

import threading

import numpy as np

from tooncrafter_studio.core.errors import Cancelled
from tooncrafter_studio.core.progress import StageReporter
from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult


class StepGate:
    """Lets a fake engine take a step only when the test allows it, so "mid-run" is a fact.

    Each allowed step is one token; `open()` lets every step through. A step waiting at the gate
    still notices a cancel, as a real engine does between its steps.
    """

    def __init__(self, tokens: int = 0) -> None:
        self._changed = threading.Condition()
        self._tokens = tokens
        self._open = False

    def allow(self, steps: int = 1) -> None:
        with self._changed:
            self._tokens += steps
            self._changed.notify_all()

    def open(self) -> None:
        with self._changed:
            self._open = True
            self._changed.notify_all()

    def pass_step(self, cancel=None) -> None:
        with self._changed:
            while not self._open and self._tokens == 0:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                self._changed.wait(0.02)  # wakes now and then to notice a cancel
            if not self._open:
                self._tokens -= 1


class SlowEngine(Engine):
    """400 denoising steps with a preview every 50; each step waits for `gate` (the Qt conftest
    gives every test a gate that lets the first step through, then waits for the test)."""

    id = "slow-test"
    label = "Slow test engine"
    capabilities = EngineCapabilities(previews=True)
    steps = 400
    gate: StepGate | None = None

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "test engine")

    def interpolate(self, request, progress=None, cancel=None):
        reporter = StageReporter(progress, cancel, "denoise", self.steps)
        reporter.start()
        for step in range(self.steps):
            if self.gate is not None:
                self.gate.pass_step(cancel)
            preview = request.start if step % 50 == 0 else None
            reporter.step(preview=preview)
        a, b = request.start.astype(np.float32), request.end.astype(np.float32)
        frames = [((1 - t) * a + t * b).round().astype(request.start.dtype) for t in request.times]
        return InterpolationResult(frames, {"test": True})


class FastSlowEngine(SlowEngine):
    id = "quick-test"
    steps = 5

    @property
    def gate(self) -> StepGate | None:  # never waits
        return None


class MissingModelEngine(Engine):
    id = "nomodel-test"
    label = "Engine without a model"

    def probe(self) -> ProbeResult:
        return ProbeResult(False, "No ToonCrafter model was found (nothing is downloaded). Looked in: models/.")

    def interpolate(self, request, progress=None, cancel=None):  # pragma: no cover - never runs
        raise AssertionError("an unavailable engine must not run")


class VariantEngine(Engine):
    """Quick, and each seed gives another drawing (a blend shifted and grained by the seed)."""

    id = "variant-test"
    label = "Variant test engine"
    capabilities = EngineCapabilities(seed_variants=True)
    options = ()

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "test engine")

    def interpolate(self, request, progress=None, cancel=None):
        reporter = StageReporter(progress, cancel, "interpolate", len(request.times))
        reporter.start()
        a, b = request.start.astype(np.float32), request.end.astype(np.float32)
        shift = int(request.seed or 0) % 7 + 1
        rng = np.random.default_rng(int(request.seed or 0))  # grain: two seeds never give the same drawing
        frames = []
        for t in request.times:
            frame = np.roll((1 - t) * a + t * b, shift, axis=1) - rng.integers(0, 16, a.shape)
            frames.append(np.clip(frame.round(), 0, 255).astype(request.start.dtype))
            reporter.step()
        return InterpolationResult(frames, {"shift": shift})
