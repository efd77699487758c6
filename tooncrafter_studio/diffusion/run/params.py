"""What one generation is asked for: a frozen value the engine builds per pass and the pipeline
runs (no torch here, so the engine can build it before torch is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_STEPS = 50
DEFAULT_CFG = 7.5
DEFAULT_ETA = 1.0
DEFAULT_FRAME_STRIDE = 10
DEFAULT_GUIDANCE_RESCALE = 0.7


@dataclass(frozen=True)
class GenerationParams:
    """The prompt, the sampler's settings, the seed and the optional sketch guidance of one call."""

    prompt: str = ""
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG
    eta: float = DEFAULT_ETA
    frame_stride: int = DEFAULT_FRAME_STRIDE
    seed: int | None = None
    guidance_rescale: float = DEFAULT_GUIDANCE_RESCALE
    sketch_hints: Any = None  # (T, 1, H, W) float hints (run/sketch_preprocess), None: no sketch guidance
    sketch_scale: float | None = None
    sketch_context: str | None = None
