"""The CPU optical-flow engine: the embedded default, no GPU and no weights.

Flat-colour 8-bit RGB drawings are in-betweened by shapes (`shapes.py`: regions matched and moved
whole); other keys, and drawings the shape engine cannot read, by dense flow (`warp.py`). This
module adapts them to the engine interface: dtype and alpha handling, progress, cancel, the
segment's arc, and a confidence per in-between. The analysis is done once per segment and reused
for every time.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np

from ...core.progress import CancelToken, ProgressCallback, StageReporter
from ...project.document import check_arc
from ..base import (
    Engine,
    EngineCapabilities,
    InterpolationRequest,
    InterpolationResult,
    ProbeResult,
    full_scale,
)
from .shapes import SHAPE_PRESETS, TOO_LARGE, ShapeInterpolator, ShapeSettings
from .warp import FlowSettings, SegmentInterpolator, settings_for

log = logging.getLogger(__name__)

VERSION = "3"  # 3: shape-level in-betweening of flat-colour drawings (shapes.py)

# What a seed changes: the alternatives an animator wants when rejecting an in-between. Seed 0
# (or none) is the default, best-scoring result; seeds 1-4 are the four main alternatives; higher
# seeds draw a combination of them (and of their strengths) from the seed.
VARIANTS: tuple[tuple[str, dict], ...] = (
    ("the other occlusion choice", {"flip_occlusion": True}),
    ("smoother flow", {"source_median": 5, "flow_median": 5, "weight_blur": 3.0, "dis_refine": 8}),
    ("start-dominant blend", {"lean_power": 0.5}),
    ("end-dominant blend", {"lean_power": 2.0}),
)


def variant_for(seed: int | None) -> tuple[str, dict]:
    """(description, FlowSettings overrides) of the alternative a seed picks; ("default", {}) for
    None and 0. The learned blend is off in the alternatives: they are hand-made choices."""
    if not seed:
        return "default", {}
    if seed <= len(VARIANTS):
        name, overrides = VARIANTS[seed - 1]
        return name, {**overrides, "learned": False}
    rng = np.random.default_rng(seed)
    while True:
        flip = bool(rng.integers(0, 2))
        smooth = int(rng.integers(0, 3))
        lean = float(rng.choice([0.4, 0.6, 0.8, 1.0, 1.25, 1.7, 2.5]))
        if flip or smooth or lean != 1.0:
            break
    overrides: dict = {"learned": False, "flip_occlusion": flip, "lean_power": lean}
    if smooth:
        overrides.update(source_median=2 * smooth + 1, weight_blur=1.5 * smooth, dis_refine=3 + 3 * smooth)
    parts = [p for p, on in (("other occlusion", flip), (f"smoother x{smooth}", smooth),
                             (f"lean x{lean:g}", lean != 1.0)) if on]
    return "mixed: " + ", ".join(parts), overrides


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1.0 / full_scale(image.dtype))


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    peak = full_scale(dtype)
    return np.clip(image * peak + 0.5, 0, peak).astype(dtype)


def premultiply(image: np.ndarray) -> np.ndarray:
    """RGBA straight alpha -> premultiplied, so transparent colours do not bleed when warped."""
    if image.shape[2] != 4:
        return image
    out = image.copy()
    out[..., :3] *= out[..., 3:4]
    return out


def unpremultiply(image: np.ndarray) -> np.ndarray:
    if image.shape[2] != 4:
        return image
    out = image.copy()
    alpha = out[..., 3:4]
    out[..., :3] = np.where(alpha > 1e-6, out[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return out


class FlowEngine(Engine):
    id = "flow"
    options = ("quality", "arc")  # the --param / segment parameters it reads; others are refused
    label = "Optical flow (CPU)"
    capabilities = EngineCapabilities(needs_gpu=False, supports_prompt=False, previews=False,
                                      max_inbetweens_per_pass=None, deterministic=True,
                                      seed_variants=True, default_seed=0)

    def __init__(self, settings: FlowSettings | None = None, use_shapes: bool = True) -> None:
        self.settings = settings  # None: from request.params["quality"] ("best" or "fast")
        self.use_shapes = use_shapes  # flat-colour drawings by regions (shapes.py); False: dense flow only

    def identity(self) -> dict:
        return {"engine": self.id, "version": VERSION, "opencv": cv2.__version__}

    def probe(self) -> ProbeResult:
        try:
            cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        except Exception as exc:  # an OpenCV build without DIS
            return ProbeResult(False, f"OpenCV has no DIS optical flow here ({exc}).")
        return ProbeResult(True, f"CPU, OpenCV {cv2.__version__}")

    def interpolate(
        self,
        request: InterpolationRequest,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> InterpolationResult:
        request.validate()
        quality = str(request.params.get("quality", "best"))
        settings = self.settings or settings_for(quality)
        variant, overrides = variant_for(request.seed)
        if overrides:
            settings = dataclasses.replace(settings, **overrides)
        times = [float(t) for t in request.times]
        reporter = StageReporter(progress, cancel, "interpolate", len(times) + 1)
        reporter.start("optical flow")
        native = request.start.dtype == np.uint8 and request.start.shape[2] == 3
        if native:  # 8-bit RGB is warped and blended as bytes (4x less memory traffic)
            start, end = request.start, request.end
        else:  # 16-bit and alpha: float, premultiplied so transparent colour does not bleed
            start = premultiply(to_float(request.start))
            end = premultiply(to_float(request.end))
        bend = request.params.get("arc")
        arc = (check_arc(bend) if bend is not None else None) or (0.0, 0.0)
        shapes = None
        if native and not overrides and self.use_shapes:
            shape_settings = ShapeSettings(**SHAPE_PRESETS.get(quality, {}))
            shapes = ShapeInterpolator(start, end, shape_settings, arc)
            if not shapes.usable:
                log.info("Shape engine not used (%s): dense flow.", shapes.reason)
                shapes = None
        if shapes is not None and shapes.handled:  # shapes move the large motions, flow the rest
            segment = SegmentInterpolator(*shapes.clean_plates(), settings)
        else:
            shapes = None
            segment = SegmentInterpolator(start, end, settings)
        reporter.step(message="regions matched, flow computed" if shapes is not None else "flow computed")
        frames = []
        for i, t in enumerate(times):
            frame = segment.frame(t)
            if shapes is not None:
                frame = shapes.frame(t, base=frame)
            frames.append(frame if native else from_float(unpremultiply(frame), request.start.dtype))
            reporter.step(message=f"in-between {i + 1}/{len(times)} (t={t:.3f})")
        reliability = shapes.combined_confidence(segment.reliability) if shapes is not None else segment.reliability
        confidence = [flow_confidence(reliability, t) for t in times]
        method = "shapes" if shapes is not None else "flow"
        info = {**self.identity(), "times": times, "quality": quality, "seed": request.seed, "variant": variant,
                "method": method, "confidence": [round(c, 3) for c in confidence]}
        if arc != (0.0, 0.0):
            info["arc"] = list(arc)
        if min(confidence) < LOW_CONFIDENCE:
            info["message"] = TOO_LARGE
        return InterpolationResult(frames, info)


LOW_CONFIDENCE = 0.5  # below this an in-between says the motion is too large for this engine


def flow_confidence(reliability: float, t: float) -> float:
    """Dense flow's confidence at time t: its forward-backward agreement, lowest mid-segment."""
    return float(1.0 - (1.0 - reliability) * (1.0 - abs(2.0 * t - 1.0)) ** 0.5)
