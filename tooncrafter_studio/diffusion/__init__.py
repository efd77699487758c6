"""Our ToonCrafter implementation (the only package that imports torch).

Importing this package is cheap: names are re-exported lazily, so torch is imported only when one
of them is first used (e.g. `from tooncrafter_studio.diffusion import build_model`).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule that defines it
_EXPORTS = {
    "build_model": "nets.model",
    "ToonCrafterModel": "nets.model",
    "ToonCrafterConfig": "nets.config",
    "UNet3D": "nets.unet",
    "UNetConfig": "nets.unet",
    "ToonCrafterPipeline": "run.pipeline",
    "load_model": "weights.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
