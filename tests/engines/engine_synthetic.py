"""Synthetic cartoon frames with known motion, shared by the engine tests."""

from __future__ import annotations

import cv2
import numpy as np

PAPER = (236, 232, 214)
INK = (20, 20, 24)
FILL = (220, 70, 60)
OTHER = (60, 90, 210)


def disc_frame(center: tuple[float, float], size=(160, 96), radius=14, background=PAPER) -> np.ndarray:
    """A filled disc with a dark outline on flat paper; `center` is (x, y) in pixels, sub-pixel ok."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = background
    shift = 4  # sub-pixel drawing
    c = (int(round(center[0] * (1 << shift))), int(round(center[1] * (1 << shift))))
    cv2.circle(img, c, radius << shift, FILL, -1, cv2.LINE_AA, shift)
    cv2.circle(img, c, radius << shift, INK, 2, cv2.LINE_AA, shift)
    return img


def fill_centroid(img: np.ndarray, colour=FILL, tolerance=40) -> tuple[float, float]:
    """Centroid (x, y) of the pixels close to `colour`."""
    diff = np.abs(img[..., :3].astype(np.int32) - np.array(colour)).max(axis=2)
    ys, xs = np.nonzero(diff < tolerance)
    assert xs.size, "no pixel of the colour found"
    return float(xs.mean()), float(ys.mean())


def occlusion_frames(x: float, size=(160, 96)) -> np.ndarray:
    """A still blue disc behind a red outlined square whose left edge is at `x`."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = PAPER
    cv2.circle(img, (80, 48), 16, OTHER, -1, cv2.LINE_AA)
    cv2.circle(img, (80, 48), 16, INK, 2, cv2.LINE_AA)
    x0 = int(round(x))
    cv2.rectangle(img, (x0, 30), (x0 + 30, 66), FILL, -1)
    cv2.rectangle(img, (x0, 30), (x0 + 30, 66), INK, 2)
    return img
