"""Large-motion seeding for the flow engine: match flat-colour regions between the two keys.

Cartoon drawings are flat colours bounded by ink. A limb that moves further than its own width
has no texture for a patch-based flow to lock onto, but as a *region* (a connected area of one
colour between lines) it is easy to find again in the other key: same colour, similar area,
not too far away. Each matched pair gives a translation; spread over the region (and, by
filling, over its outline) it becomes the initial flow that DIS then refines.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .fill import push_pull_fill


def channel_max(image: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the channels of an HxWxC image (much faster than .max(axis=2))."""
    out = image[..., 0].copy()
    for c in range(1, image.shape[2]):
        cv2.max(out, image[..., c], dst=out)
    return out


@dataclass
class Regions:
    labels: np.ndarray  # HxW int32, 0 = boundary (ink or colour edge)
    area: np.ndarray  # per label
    centroid: np.ndarray  # per label, (x, y)
    colour: np.ndarray  # per label, mean RGB 0..255
    size: np.ndarray  # per label, (w, h) of the bounding box
    angle: np.ndarray  # per label, orientation of the principal axis (radians)
    elongation: np.ndarray  # per label, 1 - minor/major eigenvalue ratio (0: round)


def find_regions(rgb8: np.ndarray, edge_threshold: int = 28) -> Regions:
    """Connected areas of near-constant colour, separated by ink and colour edges."""
    gradient = channel_max(cv2.morphologyEx(rgb8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    luma = rgb8 @ np.array([0.299, 0.587, 0.114], np.float32)
    interior = (gradient < edge_threshold) & (luma >= 90)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(interior.astype(np.uint8), connectivity=4)
    flat = labels.ravel()
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    colour = np.stack([np.bincount(flat, rgb8[..., c].ravel().astype(np.float64), minlength=count)
                       for c in range(3)], axis=1) / np.maximum(area, 1)[:, None]
    size = stats[:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].astype(np.float64)
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w]
    dx = xs.ravel() - centroids[flat, 0]
    dy = ys.ravel() - centroids[flat, 1]
    safe = np.maximum(area, 1)
    mu20 = np.bincount(flat, dx * dx, minlength=count) / safe
    mu02 = np.bincount(flat, dy * dy, minlength=count) / safe
    mu11 = np.bincount(flat, dx * dy, minlength=count) / safe
    angle = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)
    spread = np.sqrt((mu20 - mu02) ** 2 + 4 * mu11 ** 2)
    major, minor = (mu20 + mu02 + spread) / 2, (mu20 + mu02 - spread) / 2
    elongation = 1.0 - minor / np.maximum(major, 1e-9)
    return Regions(labels, area, centroids.astype(np.float64), colour, size, angle, elongation)


def match_regions(a: Regions, b: Regions, diag: float, min_area: float, max_area: float
                  ) -> list[tuple[int, int]]:
    """Mutually best pairs (label in a, label in b) by colour, area, shape and distance."""
    ia = np.flatnonzero((a.area >= min_area) & (a.area <= max_area))
    ib = np.flatnonzero((b.area >= min_area) & (b.area <= max_area))
    ia, ib = ia[ia > 0], ib[ib > 0]
    if ia.size == 0 or ib.size == 0:
        return []
    colour = np.linalg.norm(a.colour[ia, None, :] - b.colour[None, ib, :], axis=2)
    area = np.abs(np.log(a.area[ia, None] / b.area[None, ib]))
    dist = np.linalg.norm(a.centroid[ia, None, :] - b.centroid[None, ib, :], axis=2)
    extent_a = np.sort(a.size[ia], axis=1)  # rotation-tolerant: sorted bbox sides
    extent_b = np.sort(b.size[ib], axis=1)
    shape = np.abs(np.log((extent_a[:, None, :] + 2) / (extent_b[None, :, :] + 2))).max(axis=2)
    cost = colour / 12.0 + area / 0.25 + dist / (0.08 * diag) + shape / 0.5
    ok = (colour < 30) & (area < 0.6) & (dist < 0.3 * diag)
    cost = np.where(ok, cost, np.inf)
    best_b = np.argmin(cost, axis=1)
    best_a = np.argmin(cost, axis=0)
    pairs = []
    for i, j in enumerate(best_b):
        if np.isfinite(cost[i, j]) and best_a[j] == i:
            pairs.append((int(ia[i]), int(ib[j])))
    return pairs


def global_shift(rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray:
    """The dominant translation a->b (a camera pan), by phase correlation; zero if unsure."""
    ga = cv2.cvtColor(rgb_a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(rgb_b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    window = cv2.createHanningWindow((ga.shape[1], ga.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(ga, gb, window)
    if response < 0.1:
        return np.zeros(2, np.float32)
    return np.array([dx, dy], np.float32)


@dataclass
class Seeds:
    flow_ab: np.ndarray  # HxWx2 initial flow a->b
    flow_ba: np.ndarray
    known_a: np.ndarray  # HxW bool: pixel of a matched (or big, still) region of a
    known_b: np.ndarray
    labels_a: np.ndarray
    labels_b: np.ndarray
    moving: int  # matched regions that move


def _match_score(rgb_a: np.ndarray, rgb_b: np.ndarray, mask: np.ndarray, shift: np.ndarray) -> float:
    """Fraction of masked pixels of a that find their colour in b at x + shift."""
    h, w = mask.shape
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    moved = cv2.warpAffine(rgb_b, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    close = channel_max(cv2.absdiff(moved, rgb_a)) < 16
    return float(close[mask].mean()) if mask.any() else 0.0


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """image sampled at (x + dx, y + dy), edges repeated."""
    h, w = image.shape[:2]
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _test_unmatched(regions: Regions, known: np.ndarray, shift: np.ndarray, src: np.ndarray, dst: np.ndarray,
                    pan: np.ndarray, min_area: float, max_area: float, max_candidates: int = 8,
                    min_fraction: float = 0.3) -> None:
    """Give regions without a match (half hidden in the other key, split, merged) the motion,
    among the camera's and the matched regions' main motions, under which most of their pixels
    find their colour in the other key. Updates `known` and `shift` in place."""
    todo = np.flatnonzero(~known & (regions.area >= min_area) & (regions.area <= max_area))
    todo = todo[todo > 0]
    if todo.size == 0:
        return
    matched = np.flatnonzero(known & (regions.area <= max_area))
    matched = matched[matched > 0]
    candidates = {(int(round(pan[0])), int(round(pan[1])))}
    for label in matched[np.argsort(-regions.area[matched])]:
        if len(candidates) >= max_candidates:
            break
        candidates.add((int(round(shift[label, 0])), int(round(shift[label, 1]))))
    lab = regions.labels.ravel()
    count = len(regions.area)
    best = np.zeros(count)
    best_shift = np.zeros((count, 2), np.float32)
    for dx, dy in sorted(candidates):
        close = (channel_max(cv2.absdiff(_shifted(dst, dx, dy), src)) < 24).ravel()
        fraction = np.bincount(lab, close, minlength=count) / np.maximum(regions.area, 1)
        better = fraction > best
        best[better] = fraction[better]
        best_shift[better] = (dx, dy)
    good = todo[best[todo] >= min_fraction]
    shift[good] = best_shift[good]
    known[good] = True


def seed_flows(rgb_a: np.ndarray, rgb_b: np.ndarray, test_unmatched: bool = True) -> Seeds:
    """Initial flows a->b and b->a from region matches (zero where nothing moved or matched)."""

    h, w = rgb_a.shape[:2]
    diag = float(np.hypot(h, w))
    ra, rb = find_regions(rgb_a), find_regions(rgb_b)
    min_area = max(12.0, 2e-4 * h * w)
    max_area = 0.15 * h * w
    pairs = match_regions(ra, rb, diag, min_area, max_area)
    pan = global_shift(rgb_a, rgb_b)
    big_a = ra.area[ra.labels] > max_area
    if pan.any():
        still = _match_score(rgb_a, rgb_b, big_a, np.zeros(2))
        moved = _match_score(rgb_a, rgb_b, big_a, pan)
        # Flat paper matches itself at any shift: a pan must explain most of what a still camera
        # cannot; otherwise the correlation peak was a moving object, not the camera.
        if moved - still <= max(0.02, 0.5 * (1.0 - still)):
            pan = np.zeros(2, np.float32)
    fields = []
    masks = []
    moving = 0
    h, w = rgb_a.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for regions, other, direction in ((ra, rb, 1), (rb, ra, -1)):
        n = len(regions.area)
        # Per region a similarity transform x -> dst_centre + scale * R(turn) (x - src_centre).
        shift = np.zeros((n, 2), np.float32)
        turn = np.zeros(n, np.float32)
        scale = np.ones(n, np.float32)
        centre = regions.centroid.astype(np.float32)
        known = np.zeros(n, bool)
        # Big regions (paper, sky) follow the camera: the global shift of the whole picture.
        known[regions.area > max_area] = True
        shift[regions.area > max_area] = pan * direction
        for i, j in pairs:
            src, dst = (i, j) if direction == 1 else (j, i)
            shift[src] = other.centroid[dst] - regions.centroid[src]
            known[src] = True
            if min(regions.elongation[src], other.elongation[dst]) > 0.5:  # a clear axis: rotation
                delta = (other.angle[dst] - regions.angle[src] + np.pi / 2) % np.pi - np.pi / 2
                turn[src] = delta
            scale[src] = np.sqrt(other.area[dst] / regions.area[src])
        if test_unmatched:
            src_rgb, dst_rgb = (rgb_a, rgb_b) if direction == 1 else (rgb_b, rgb_a)
            _test_unmatched(regions, known, shift, src_rgb, dst_rgb, pan * direction, min_area, max_area)
        moving += int((np.linalg.norm(shift, axis=1) > 1.0).sum())
        known[0] = False
        lab = regions.labels
        rx, ry = xs - centre[lab, 0], ys - centre[lab, 1]
        cos, sin, sc = np.cos(turn)[lab] * scale[lab], np.sin(turn)[lab] * scale[lab], shift[lab]
        field = np.dstack([cos * rx - sin * ry - rx + sc[..., 0], sin * rx + cos * ry - ry + sc[..., 1]])
        valid = known[lab]
        fields.append(push_pull_fill(field, valid))
        masks.append(valid)
    return Seeds(fields[0], fields[1], masks[0], masks[1], ra.labels, rb.labels, moving // 2)
