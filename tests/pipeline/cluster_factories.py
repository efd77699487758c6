"""Engines that Ray workers build in their own processes (importable there: the tests put this folder
on the workers' PYTHONPATH)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from pipeline_factories import BlendEngine

from tooncrafter_studio.core.errors import InputError


class MarkedBlend(BlendEngine):
    """BlendEngine that notes each request it starts (a file named after its process and start time)
    and then, given `hold`, waits until that file exists before making frames, so a test acts on a
    worker while it is certainly in the middle of a task. The first `free_first` tasks to start
    never wait."""

    id = "test-marked"

    def __init__(self, marks: str, hold: str | None = None, free_first: int = 0) -> None:
        super().__init__()
        self.marks = Path(marks)
        self.hold = Path(hold) if hold else None
        self.free_first = free_first

    def interpolate(self, request, progress=None, cancel=None):
        self.marks.mkdir(parents=True, exist_ok=True)
        mine = self.marks / f"{os.getpid()}-{time.monotonic_ns()}"
        mine.touch()
        started = sorted(self.marks.iterdir(), key=lambda p: int(p.name.split("-")[1]))
        if self.hold is not None and mine not in started[:self.free_first]:
            while not self.hold.exists():  # released by the test; a cancel interrupts the wait
                time.sleep(0.02)
        return super().interpolate(request, progress, cancel)


class FailingBlend(MarkedBlend):
    """Refuses a request with params["fail"], the way an engine refuses a bad parameter."""

    def interpolate(self, request, progress=None, cancel=None):
        if "fail" in request.params:
            raise InputError(f"this engine refuses fail={request.params['fail']!r}.")
        return super().interpolate(request, progress, cancel)


def tiny_tooncrafter():
    """The ToonCrafter engine with the tiny reduced random model of tests/engines/tooncrafter (64x64)."""
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model
    from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine

    config = dataclasses.replace(ToonCrafterConfig.reduced(), latent_size=(8, 8))
    model = build_model(config, device="cpu")
    fill_module(model)
    return ToonCrafterEngine(model=model, device="cpu")
