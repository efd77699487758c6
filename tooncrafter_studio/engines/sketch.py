"""Sketches in a request: the animator's rough drawings for some in-between times.

They travel in `InterpolationRequest.params` under `sketches` (a list of `Sketch`), with
`sketch_scale`, `sketch_context` and `sketch_encoder` (a file); engines that cannot use them
(the flow engine) ignore them and say so. Pure data, no torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import InputError

SKETCH_KEYS = ("sketches", "sketch_scale", "sketch_context", "sketch_encoder")
DEFAULT_SCALE = 0.6
MAX_SCALE = 1.5
CONTEXTS = ("text", "all")
DEFAULT_CONTEXT = "text"


def pixels_digest(image: np.ndarray) -> str:
    """SHA-256 of an image's pixels and shape (a sketch's identity when no file is at hand)."""
    digest = hashlib.sha256(f"{image.shape}:{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Sketch:
    """Line art for the in-between at `time` (in (0, 1) between the two keys)."""

    time: float
    image: np.ndarray = field(repr=False, compare=False)
    name: str = ""  # file name or label shown to the user
    sha256: str = ""  # of the file when read from one, else of the pixels

    def __post_init__(self) -> None:
        if not (0.0 < float(self.time) < 1.0):
            raise InputError(f"A sketch's time must lie strictly between the keys (0 and 1), not {self.time}.")
        image = np.asarray(self.image)
        if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
            raise InputError(f"Sketch {self.name or self.time}: not an image (array of shape {image.shape}).")
        if not self.sha256:
            object.__setattr__(self, "sha256", pixels_digest(image))

    def identity(self) -> dict[str, Any]:
        """What provenance records: time, name, content hash and size."""
        h, w = self.image.shape[:2]
        return {"time": round(float(self.time), 6), "name": self.name, "sha256": self.sha256, "size": [w, h]}


@dataclass(frozen=True)
class SketchOptions:
    sketches: tuple[Sketch, ...] = ()
    scale: float = DEFAULT_SCALE
    context: str = DEFAULT_CONTEXT
    encoder: str | None = None  # explicit sketch_encoder file

    def __bool__(self) -> bool:
        return bool(self.sketches)


def check_scale(value: Any) -> float:
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The sketch strength must be a number, not {value!r}.") from None
    if not (0.0 <= scale <= MAX_SCALE):
        raise InputError(f"The sketch strength must be between 0 and {MAX_SCALE:g}, not {scale:g}.")
    return scale


def split_sketch_params(params: Mapping[str, Any] | None) -> tuple[SketchOptions, dict[str, Any]]:
    """(the sketch options, the other params) of a request; bad values are InputErrors."""
    rest = dict(params or {})
    sketches = rest.pop("sketches", None) or ()
    scale = rest.pop("sketch_scale", None)
    context = rest.pop("sketch_context", None)
    encoder = rest.pop("sketch_encoder", None)
    if not isinstance(sketches, Sequence) or not all(isinstance(s, Sketch) for s in sketches):
        raise InputError("sketches must be a list of Sketch entries.")
    if context is not None and context not in CONTEXTS:
        raise InputError(f"Unknown sketch context '{context}': use one of {', '.join(CONTEXTS)}.")
    times = [round(float(s.time), 9) for s in sketches]
    if len(set(times)) != len(times):
        raise InputError("Two sketches are placed at the same time; keep one per in-between.")
    options = SketchOptions(tuple(sorted(sketches, key=lambda s: s.time)),
                            DEFAULT_SCALE if scale is None else check_scale(scale),
                            context or DEFAULT_CONTEXT, None if encoder is None else str(encoder))
    return options, rest
