"""Hole filling shared by the flow engine's modules (the warp and the region seeds)."""

from __future__ import annotations

import cv2
import numpy as np


def push_pull_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid pixels of HxWxC `values` from the valid ones around them (coarse to fine)."""
    if valid.all() or not valid.any():
        return values if valid.any() else np.zeros_like(values)
    weight = valid.astype(np.float32)
    levels = [(values * weight[..., None], weight)]
    while True:
        v, w = levels[-1]
        if (w > 0).all() or min(w.shape) <= 2:
            break
        w_down = cv2.pyrDown(w)
        levels.append((cv2.pyrDown(v).reshape(*w_down.shape, -1), w_down))
    # Coarsest level: normalise what is there, zeros elsewhere.
    v, w = levels[-1]
    filled = np.where(w[..., None] > 1e-6, v / np.maximum(w, 1e-6)[..., None], 0.0).astype(np.float32)
    for v, w in reversed(levels[1:-1]):
        up = cv2.resize(filled, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(w.shape[0], w.shape[1], -1)
        own = v / np.maximum(w, 1e-6)[..., None]
        blend = np.clip(w, 0.0, 1.0)[..., None]
        filled = (own * blend + up * (1.0 - blend)).astype(np.float32)
    # Finest level: the weights are the 0/1 mask, so valid pixels keep their values and the
    # others take the upsampled fill (no blend needed at full resolution).
    up = cv2.resize(filled, (valid.shape[1], valid.shape[0]), interpolation=cv2.INTER_LINEAR)
    out = values.astype(np.float32, copy=True)
    np.copyto(out, up.reshape(out.shape), where=~valid[..., None])
    return out
