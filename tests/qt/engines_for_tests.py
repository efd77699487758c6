"""Engines that misbehave on purpose: slow (to cancel while the UI runs) and unavailable."""

from __future__ import annotations

import time

import numpy as np

from tooncrafter_studio.core.progress import StageReporter
from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult


class SlowEngine(Engine):
    id = "slow-test"
    label = "Slow test engine"
    capabilities = EngineCapabilities(previews=True)
    steps = 400
    delay = 0.01

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "test engine")

    def interpolate(self, request, progress=None, cancel=None):
        reporter = StageReporter(progress, cancel, "denoise", self.steps)
        reporter.start()
        for step in range(self.steps):
            time.sleep(self.delay)
            preview = request.start if step % 50 == 0 else None
            reporter.step(preview=preview)
        a, b = request.start.astype(np.float32), request.end.astype(np.float32)
        frames = [((1 - t) * a + t * b).round().astype(request.start.dtype) for t in request.times]
        return InterpolationResult(frames, {"test": True})


class FastSlowEngine(SlowEngine):
    id = "quick-test"
    steps = 5
    delay = 0.001


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
