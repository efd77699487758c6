"""The cross-fade engine: a trivial baseline (and a fallback that cannot fail)."""

from __future__ import annotations

import numpy as np

from ..core.progress import CancelToken, ProgressCallback, StageReporter
from .base import (
    Engine,
    EngineCapabilities,
    InterpolationRequest,
    InterpolationResult,
    ProbeResult,
    full_scale,
)


class CrossfadeEngine(Engine):
    id = "crossfade"
    label = "Cross-fade"
    capabilities = EngineCapabilities(needs_gpu=False, supports_prompt=False, previews=False,
                                      max_inbetweens_per_pass=None, deterministic=True)
    options = ()

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "always available")

    def interpolate(
        self,
        request: InterpolationRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> InterpolationResult:
        request.validate()
        reporter = StageReporter(progress, cancel, "interpolate", len(request.times))
        reporter.start()
        peak = full_scale(request.start.dtype)
        a = request.start.astype(np.float32)
        b = request.end.astype(np.float32)
        if a.shape[2] == 4:  # blend premultiplied so a fully transparent key adds no colour
            a[..., :3] *= a[..., 3:4] / peak
            b[..., :3] *= b[..., 3:4] / peak
        frames = []
        for i, t in enumerate(request.times):
            mix = a * (1.0 - float(t)) + b * float(t)
            if mix.shape[2] == 4:
                alpha = mix[..., 3:4]
                mix[..., :3] = np.where(alpha > 0, mix[..., :3] * peak / np.maximum(alpha, 1e-6), 0.0)
            frames.append(np.clip(mix + 0.5, 0, peak).astype(request.start.dtype))
            reporter.step(message=f"in-between {i + 1}/{len(request.times)}")
        return InterpolationResult(frames, {"engine": self.id, "times": [float(t) for t in request.times]})
