"""A small real project on disk and tiny test engines, so the runner tests need no real engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tooncrafter_studio.core.errors import Cancelled
from tooncrafter_studio.core.progress import StageReporter
from tooncrafter_studio.engines.base import (
    Engine,
    EngineCapabilities,
    InterpolationResult,
    ProbeResult,
)
from tooncrafter_studio.media import import_source, write_png
from tooncrafter_studio.project.commands import SetKeys
from tooncrafter_studio.project.project import Project, new_project


def frame_image(i: int, alpha: bool = False) -> np.ndarray:
    image = np.full((24, 32, 4 if alpha else 3), 255, np.uint8)
    image[8:16, 2 + 3 * i: 8 + 3 * i, :3] = (200, 30, 30)
    if alpha:
        image[..., 3] = 128
    return image


def make_sequence(folder: Path, count: int = 17, alpha: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_png(folder / f"walk.{i + 1:04d}.png", frame_image(i % 9, alpha))
    return folder


def make_project(tmp_path: Path, keys=(1, 9, 17), count: int = 17, alpha: bool = False) -> Project:
    source = import_source(make_sequence(tmp_path / "footage", count, alpha)).source
    project = new_project(tmp_path / "shot", source, None, fps=24)
    if keys:
        project.push(SetKeys.at_frames(project.shot, keys, True))
        project.save()
    return project


class BlendEngine(Engine):
    """Mixes the keys by t; remembers its requests. `cancel_at`: raise Cancelled at that step.
    `before_frame(i)` runs before frame i is made: a test parks the engine there, mid-run."""

    id = "test-blend"
    label = "Test blend"
    capabilities = EngineCapabilities()
    instances: list[BlendEngine] = []

    def __init__(self, available: bool = True, cancel_at: int | None = None,
                 before_frame: Callable[[int], None] | None = None) -> None:
        self.available = available
        self.cancel_at = cancel_at
        self.before_frame = before_frame
        self.requests = []
        self.loads = 0
        BlendEngine.instances.append(self)

    def identity(self):
        return {"engine": self.id, "version": "1.2", "model": "none", "model_hash": "abc"}

    def probe(self) -> ProbeResult:
        return ProbeResult(self.available, "ready" if self.available else "no tiny GPU in this test")

    def load(self, progress=None, cancel=None) -> None:
        self.loads += 1

    def interpolate(self, request, progress=None, cancel=None):
        request.validate()
        self.requests.append(request)
        reporter = StageReporter(progress, cancel, "blend", len(request.times))
        reporter.start()
        frames = []
        for i, t in enumerate(request.times):
            if self.cancel_at == i:
                if cancel is not None:
                    cancel.cancel()
                raise Cancelled()
            if self.before_frame is not None:
                self.before_frame(i)
            mix = request.start.astype(np.float32) * (1 - t) + request.end.astype(np.float32) * t
            frames.append(np.round(mix).astype(request.start.dtype))
            reporter.step(message=f"{i + 1}")
        return InterpolationResult(frames, {"seed": request.seed, "note": np.float32(0.5)})


class WrongCountEngine(BlendEngine):
    id = "test-wrong"

    def interpolate(self, request, progress=None, cancel=None):
        result = super().interpolate(request, progress, cancel)
        return InterpolationResult(result.frames[:-1], {})
