"""The one interface every in-betweening engine implements.

Data crosses this boundary as numpy arrays: keys are HxWx3 (RGB) or HxWx4 (RGBA), uint8 or
uint16; results have the keys' shape and dtype, one frame per requested time, in time order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.progress import CancelToken, ProgressCallback


def full_scale(dtype: np.dtype) -> float:
    """The value of full intensity (and of opaque alpha) for a key's dtype: 255.0 or 65535.0."""
    return float(np.iinfo(dtype).max)


@dataclass(frozen=True)
class EngineCapabilities:
    needs_gpu: bool = False
    supports_prompt: bool = False
    previews: bool = False
    max_inbetweens_per_pass: int | None = None  # None: any number in one pass
    deterministic: bool = True
    seed_variants: bool = False  # True when another seed gives a different result (a real variant)
    default_seed: int | None = None  # the seed of the engine's default result (flow: 0); None: draw one


@dataclass(frozen=True)
class ProbeResult:
    available: bool
    reason: str = ""  # human-readable; says why not, or what will be used ("CUDA, 24 GB free")


@dataclass
class InterpolationRequest:
    start: np.ndarray
    end: np.ndarray
    times: list[float]  # each strictly inside (0, 1)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prompt: str = ""

    def validate(self) -> None:
        for name, image in (("start", self.start), ("end", self.end)):
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
                raise InputError(f"The {name} key must be an RGB or RGBA image (HxWx3 or HxWx4).")
            if image.dtype not in (np.uint8, np.uint16):
                raise InputError(f"The {name} key must be 8- or 16-bit, not {image.dtype}.")
        if self.start.shape != self.end.shape or self.start.dtype != self.end.dtype:
            raise InputError(
                f"The keys differ: start is {self.start.shape[1]}x{self.start.shape[0]} "
                f"({self.start.dtype}), end is {self.end.shape[1]}x{self.end.shape[0]} ({self.end.dtype})."
            )
        if not self.times:
            raise InputError("No in-between times were requested.")
        for t in self.times:
            if not (0.0 < float(t) < 1.0):
                raise InputError(f"In-between time {t} is outside (0, 1).")


@dataclass
class InterpolationResult:
    frames: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)  # provenance: model identity, seed used, ...


class Engine(ABC):
    """Subclasses set `id`, `label`, `capabilities` and implement `probe` and `interpolate`.

    Options (model file, device, quality...) are handed over once, by `configure`, before `probe`;
    `options` names the ones an engine takes: () takes none, None has not declared them (an older
    engine: anything is passed through to `interpolate` in `request.params` unchecked).
    """

    id: str = ""
    label: str = ""
    capabilities: EngineCapabilities = EngineCapabilities()
    options: tuple[str, ...] | None = None

    def configure(self, params: dict[str, Any]) -> None:
        """Set the engine's options, replacing earlier ones; called once per job or run, before probe().
        The default has nothing to configure: it only refuses names outside `options` (InputError
        naming the ones it takes) and keeps the rest for `interpolate` to read."""
        check_option_names(self, params)
        self.configured = dict(params)

    def identity(self) -> dict[str, Any]:
        """What made a take, for provenance (engine id, version, model file and hash...)."""
        return {"engine": self.id}

    @abstractmethod
    def probe(self) -> ProbeResult:
        """Can this engine run here? Never raises."""

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:  # noqa: B027
        """Load weights or warm up; engines without state do nothing."""

    def unload(self) -> None:  # noqa: B027
        """Free memory held by a loaded engine."""

    def release_gpu(self) -> None:  # noqa: B027
        """Give the GPU memory back (weights and the allocator's cache) but keep what is cheap to
        keep; engines that hold no GPU memory do nothing."""

    @abstractmethod
    def interpolate(
        self,
        request: InterpolationRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> InterpolationResult:
        """One frame per `request.times` entry, at the keys' resolution, dtype and channel count."""


def check_option_names(engine: Engine, params: dict[str, Any]) -> None:
    """InputError for option names `engine` does not take (when it declares its options)."""
    if engine.options is None:
        return
    unknown = sorted(set(params) - set(engine.options))
    if unknown:
        name = engine.label or engine.id
        takes = (f"it takes {', '.join(engine.options)}" if engine.options else "it takes none")
        raise InputError(f"The {name} engine has no option{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} ({takes}).")
