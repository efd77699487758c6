"""Colour matching of generated frames to the keys (the model drifts in brightness and tone).

Per-channel mean/variance transfer in CIE Lab (perceptual: lightness and the two opponent
colour axes are adjusted separately). An in-between at time t is matched to statistics that
move from the start key's to the end key's with t, so a deliberate colour change between the
keys survives while the model's drift is removed. Statistics can be limited to a mask (the
content of a letterboxed frame, without the bars).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_STATS_MAX_SIDE = 256  # statistics from a reduced copy: as good, much cheaper
_MIN_STD = 1e-3


@dataclass(frozen=True)
class LabStats:
    mean: np.ndarray  # (3,) float64
    std: np.ndarray  # (3,) float64

    def lerp(self, other: LabStats, t: float) -> LabStats:
        return LabStats((1 - t) * self.mean + t * other.mean, (1 - t) * self.std + t * other.std)


def rgb8_to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 RGB HxWx3 -> float32 Lab (L 0..100, a/b about -128..127)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _reduced(image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = image.shape[:2]
    factor = max(h, w) / _STATS_MAX_SIDE
    if factor <= 1:
        return image, mask
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_mask = None
    if mask is not None:
        small_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return small, small_mask


def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> LabStats:
    """Mean and standard deviation of each Lab channel of a uint8 RGB image (inside `mask`)."""
    small, small_mask = _reduced(image, mask)
    lab = rgb8_to_lab(small).reshape(-1, 3).astype(np.float64)
    if small_mask is not None and small_mask.any():
        lab = lab[small_mask.reshape(-1)]
    return LabStats(lab.mean(axis=0), lab.std(axis=0))


def match_frame(frame: np.ndarray, target: LabStats, mask: np.ndarray | None = None,
                strength: float = 1.0) -> np.ndarray:
    """`frame` (uint8 RGB) with its Lab statistics moved to `target` (fully at strength 1)."""
    source = lab_stats(frame, mask)
    lab = rgb8_to_lab(frame)
    gain = np.where(source.std > _MIN_STD, target.std / np.maximum(source.std, _MIN_STD), 1.0)
    matched = (lab - source.mean.astype(np.float32)) * gain.astype(np.float32) + target.mean.astype(np.float32)
    if strength < 1.0:
        matched = lab + strength * (matched - lab)
    out = lab_to_rgb8(matched)
    if mask is not None:  # bars stay as they were
        out = np.where(mask[..., None], out, frame)
    return out


def match_to_keys(frames: list[np.ndarray], times: list[float], start: np.ndarray, end: np.ndarray,
                  mask: np.ndarray | None = None, strength: float = 1.0) -> list[np.ndarray]:
    """Match each frame at time t in (0, 1) to the keys' statistics interpolated at t."""
    if len(frames) != len(times):
        raise ValueError("one time per frame")
    a, b = lab_stats(start, mask), lab_stats(end, mask)
    return [match_frame(f, a.lerp(b, float(t)), mask, strength) for f, t in zip(frames, times)]
