""""Line art from image": a clean sketch hint from a rough colour pose or a key, classically.

Two methods on the luminance (numpy + OpenCV, no model):
- `xdog`: the extended difference of Gaussians (Winnemöller et al. 2012): edges of the blurred
  luminance at two scales, sharpened by a soft threshold. Keeps outlines and interior lines,
  ignores flat colour areas.
- `threshold`: an adaptive (local mean) threshold: dark strokes darker than their surroundings;
  best for scanned pencil drawings.
Both return black lines on white, (H, W, 3) uint8 RGB, the format the sketch row expects.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.errors import InputError

METHODS = ("xdog", "threshold")


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1] of an RGB/RGBA/grey image (alpha over white)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"Line art needs an 8- or 16-bit grey, RGB or RGBA image, not {image.dtype} {image.shape}.")
    scale = float(np.iinfo(image.dtype).max)
    pixels = image.astype(np.float32) / scale
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4]
        rgb = rgb * alpha + (1.0 - alpha)
    return (0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]).astype(np.float32)


def xdog(grey: np.ndarray, sigma: float = 0.8, k: float = 1.6, p: float = 20.0, epsilon: float = 0.02,
         phi: float = 40.0) -> np.ndarray:
    """Lines (1 = ink) from a [0, 1] luminance by XDoG; sigma in pixels of the image."""
    g1 = cv2.GaussianBlur(grey, (0, 0), sigma)
    g2 = cv2.GaussianBlur(grey, (0, 0), sigma * k)
    sharpened = (1.0 + p) * g1 - p * g2  # bright paper stays ~1, a dark line's rim dips
    paper = np.where(sharpened >= epsilon, 1.0, 1.0 + np.tanh(phi * (sharpened - epsilon)))
    return np.clip(1.0 - paper, 0.0, 1.0).astype(np.float32)


def adaptive_lines(grey: np.ndarray, block: int = 15, offset: float = 0.04) -> np.ndarray:
    """Lines (1 = ink): pixels darker than their neighbourhood's mean by more than `offset`."""
    block = max(3, block | 1)
    mean = cv2.blur(grey, (block, block), borderType=cv2.BORDER_REFLECT)
    return (grey < mean - offset).astype(np.float32)


def line_art(image: np.ndarray, method: str = "xdog", strength: float = 1.0) -> np.ndarray:
    """Black-on-white line art (H, W, 3) uint8 of an image; `strength` scales line detail (0.25-4):
    larger gives more and thicker lines."""
    if method not in METHODS:
        raise InputError(f"Unknown line-art method '{method}': use one of {', '.join(METHODS)}.")
    if not (0.25 <= strength <= 4.0):
        raise InputError(f"The line-art strength must be between 0.25 and 4, not {strength:g}.")
    grey = luminance(image)
    scale = max(1.0, max(grey.shape) / 512.0)  # the same look at any resolution
    if method == "xdog":
        ink = xdog(grey, sigma=0.8 * scale * strength ** 0.5, epsilon=0.02 * strength)
    else:
        ink = adaptive_lines(grey, block=int(15 * scale), offset=0.04 / strength)
    page = np.rint(255.0 * (1.0 - ink)).astype(np.uint8)
    return np.repeat(page[:, :, None], 3, axis=2)
