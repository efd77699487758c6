"""The ToonCrafter engine (generative in-betweens on the GPU); torch is imported only when it runs."""

from __future__ import annotations

import importlib.util

from ...setup.engine_env import package_source_root, ready_env
from ..base import Engine
from .engine import ToonCrafterEngine


def create_tooncrafter_engine() -> Engine:
    """In this interpreter when it has torch; otherwise in the private environment that
    `tooncrafter-studio engine install` made (as a worker process); otherwise an engine whose probe
    says what is missing."""
    if importlib.util.find_spec("torch") is not None:
        return ToonCrafterEngine()
    env = ready_env()
    if env is None:
        return ToonCrafterEngine()
    from ..worker import WorkerEngine

    return WorkerEngine("tooncrafter", env.python, package_source_root(),
                        label=f"{ToonCrafterEngine.label} [{env.variant}]",
                        capabilities=ToonCrafterEngine.capabilities)


create_tooncrafter_engine.engine_class = ToonCrafterEngine  # what the registry reads label and capabilities from

__all__ = ["ToonCrafterEngine", "create_tooncrafter_engine"]
