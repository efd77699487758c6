"""Ink-bounded colour regions of a flat-colour drawing: the units the shape engine matches.

A drawing is split into *ink* (thin dark lines) and *regions*: connected areas of near-constant
colour between lines and colour edges. Thick dark areas (black hair, pupils larger than a line)
are regions of their own, not ink. Anti-aliased edge pixels belong to the nearest region, so the
regions and the ink together cover every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .regions import channel_max

INK_LUMA = 85  # below this luminance (0..255) a pixel is dark: ink, or a dark region if thick
EDGE = 24  # a colour step (max channel, 3x3) at least this large separates regions
MIN_AREA = 6  # smaller specks are edge pixels, not regions


@dataclass
class Segmentation:
    labels: np.ndarray  # HxW int32: region id 1..count-1 for region pixels, 0 for ink
    nearest: np.ndarray  # HxW int32: every pixel (ink too) -> the nearest region id
    ink: np.ndarray  # HxW bool
    ink_width: float  # typical line width (px)
    area: np.ndarray  # per id (index 0 unused), float
    centroid: np.ndarray  # per id, (x, y)
    colour: np.ndarray  # per id, mean RGB of the region's flat interior
    axes: np.ndarray  # per id, (major, minor) standard deviations of the shape (rotation-free)
    adjacency: np.ndarray  # count x count int32: shared border length through ink or edge

    @property
    def count(self) -> int:
        return len(self.area)

    def neighbours(self, region: int) -> np.ndarray:
        return np.flatnonzero(self.adjacency[region])


def segment(rgb8: np.ndarray) -> Segmentation:
    """Regions and ink of an HxWx3 uint8 RGB drawing."""
    h, w = rgb8.shape[:2]
    luma = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)
    dark = luma < INK_LUMA
    gradient = channel_max(cv2.morphologyEx(rgb8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    # Line width: twice the typical distance to light pixels on the dark pixels' ridges (the
    # medial axes); a thick dark area has a short ridge, so lines dominate the median.
    dist = cv2.distanceTransform(dark.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = dist[(dist > 0) & (dist < 1e4) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))]
    ink_width = 2.0 * min(float(np.median(ridge)), 6.0) if ridge.size else 2.0
    ink_width = float(np.clip(ink_width, 1.0, 12.0))
    # Dark areas wider than ~2.5 lines are filled regions (hair, a black cat), not ink.
    radius = max(2, int(round(1.25 * ink_width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    thick = cv2.dilate(cv2.erode(dark.astype(np.uint8), kernel), kernel).astype(bool) & dark
    ink = dark & ~thick
    interior = (gradient < EDGE) & ~ink
    count, labels, stats, _ = cv2.connectedComponentsWithStats(interior.astype(np.uint8), connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < MIN_AREA
    small[0] = False
    if small.any():  # specks become edge pixels and are re-assigned below
        keep = np.flatnonzero(~small)
        remap = np.zeros(count, np.int32)
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        labels = remap[labels]
        count = len(keep)
        interior = labels > 0
    flat_colour = np.zeros((count, 3))
    flat = labels.ravel()
    in_area = np.bincount(flat, minlength=count).astype(np.float64)
    for c in range(3):
        flat_colour[:, c] = np.bincount(flat, rgb8[..., c].ravel().astype(np.float64), minlength=count)
    flat_colour /= np.maximum(in_area, 1)[:, None]
    if count <= 1:  # no flat region at all: everything is ink/edge
        nearest = np.zeros((h, w), np.int32)
    else:
        nearest = _nearest_label(labels)
    # Edge pixels (not ink) join their nearest region; ink stays 0.
    labels = np.where(ink, 0, nearest).astype(np.int32)
    area, centroid, axes = _shape_stats(labels, count)
    adjacency = _adjacency(nearest, count)
    return Segmentation(labels, nearest, ink, ink_width, area, centroid, flat_colour, axes, adjacency)


def _nearest_label(labels: np.ndarray) -> np.ndarray:
    """Every pixel's nearest labelled (> 0) pixel's label."""
    holes = (labels == 0).astype(np.uint8)
    if not holes.any():
        return labels.astype(np.int32)
    _, index = cv2.distanceTransformWithLabels(holes, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    seeds = labels[labels > 0]  # the labelled pixels in raster order: index 1..N
    lookup = np.concatenate([[0], seeds]).astype(np.int32)
    return lookup[index]


def _shape_stats(labels: np.ndarray, count: int):
    h, w = labels.shape
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count).astype(np.float64)
    safe = np.maximum(area, 1)
    ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
    sx = np.bincount(flat, xs, minlength=count)
    sy = np.bincount(flat, ys, minlength=count)
    cx, cy = sx / safe, sy / safe
    dx, dy = xs - cx[flat], ys - cy[flat]
    mu20 = np.bincount(flat, dx * dx, minlength=count) / safe
    mu02 = np.bincount(flat, dy * dy, minlength=count) / safe
    mu11 = np.bincount(flat, dx * dy, minlength=count) / safe
    spread = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11 ** 2)
    major = np.sqrt(np.maximum((mu20 + mu02 + spread) / 2, 0.0))
    minor = np.sqrt(np.maximum((mu20 + mu02 - spread) / 2, 0.0))
    return area, np.stack([cx, cy], axis=1), np.stack([major, minor], axis=1)


def _adjacency(nearest: np.ndarray, count: int) -> np.ndarray:
    """Border length between every two regions (the border runs through the ink between them)."""
    pairs = []
    for a, b in ((nearest[:, :-1], nearest[:, 1:]), (nearest[:-1, :], nearest[1:, :])):
        differ = a != b
        pairs.append(np.stack([a[differ], b[differ]], axis=1))
    both = np.concatenate(pairs)
    matrix = np.zeros((count, count), np.int32)
    if both.size:
        np.add.at(matrix, (both[:, 0], both[:, 1]), 1)
        matrix = matrix + matrix.T
    matrix[0, :] = 0
    matrix[:, 0] = 0
    return matrix
