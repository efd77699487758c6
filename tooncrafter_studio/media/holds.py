"""Hold detection: consecutive identical frames become one drawing with a longer exposure.

An animation on 2s, rendered to one file per frame, repeats every drawing twice; detecting that
turns 24 files into 12 drawings held for 2 frames each. "Identical" allows for compression
noise: two frames match when no more than `max_changed_fraction` of the pixels differ by more
than `tolerance` (in 8-bit steps).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_TOLERANCE = 6  # 8-bit steps: above JPEG/video noise on flat colours, below a line moving
DEFAULT_MAX_CHANGED_FRACTION = 1e-4


def frames_match(a: np.ndarray, b: np.ndarray, tolerance: float = DEFAULT_TOLERANCE,
                 max_changed_fraction: float = DEFAULT_MAX_CHANGED_FRACTION) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype == np.uint16 or b.dtype == np.uint16:
        scale = 257.0
    else:
        scale = 1.0
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32)) if scale != 1.0 else \
        np.abs(a.astype(np.int16) - b.astype(np.int16))
    changed = np.count_nonzero(diff.max(axis=2) > tolerance * scale if diff.ndim == 3 else diff > tolerance * scale)
    return changed <= max_changed_fraction * a.shape[0] * a.shape[1]


def detect_holds(frames: Iterable[np.ndarray], tolerance: float = DEFAULT_TOLERANCE,
                 max_changed_fraction: float = DEFAULT_MAX_CHANGED_FRACTION) -> list[tuple[int, int]]:
    """Groups [(first source frame, length)] covering every frame, in order.

    Each frame is compared with the first frame of the current group, so slow drift never chains
    a whole shot into one drawing.
    """
    groups: list[tuple[int, int]] = []
    anchor: np.ndarray | None = None
    start = length = 0
    for index, frame in enumerate(frames):
        if anchor is not None and frames_match(anchor, frame, tolerance, max_changed_fraction):
            length += 1
            continue
        if anchor is not None:
            groups.append((start, length))
        anchor, start, length = frame, index, 1
    if anchor is not None:
        groups.append((start, length))
    return groups
