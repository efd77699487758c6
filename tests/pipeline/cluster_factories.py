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
    """BlendEngine that notes each request it starts (a file named after its process) and then waits
    until the file `hold` exists before making frames, so a test acts on a worker while it is
    certainly in the middle of a task. With `hold` given here every request waits; without it, only
    requests whose params say {"hold": path}."""

    id = "test-marked"

    def __init__(self, marks: str, hold: str | None = None) -> None:
        super().__init__()
        self.marks = Path(marks)
        self.hold = hold

    def interpolate(self, request, progress=None, cancel=None):
        self.marks.mkdir(parents=True, exist_ok=True)
        (self.marks / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        hold = self.hold or request.params.get("hold")
        while hold and not Path(hold).exists():  # released by the test; a cancel ends the worker
            time.sleep(0.02)  # poll for the release
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
