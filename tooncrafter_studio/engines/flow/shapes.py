"""Shape-level in-betweening of flat-colour drawings: regions, not pixels, are moved.

Per segment (two keys):
1. Both keys are split into ink and flat colour regions (segment.py). A region whose outline
   stays put between the keys is *static* (sky, ground); the others *move*.
2. Moving regions are matched as an assignment problem (assign.py) by colour, area, shape
   moments, position and the colours around them; a region left over beside a matched one of its
   colour joins it (a split or a merge); the rest appear or disappear.
3. Matched regions that touch in both keys form a *group* (a character, a ball with its stripe and
   face): regions inside a group without a partner (an eye turning away) stay part of it.
4. Each group gets one affine transform from its shape moments (the rotation chosen by comparing
   colours), refined by ECC on the pixels. An in-between is each group moved along its path
   (straight, or on the segment's arc) with its shape blended: rotation and stretch interpolated
   separately, so a ball stays one ball.
5. Layering: who covers whom is read from the keys (where one group's predicted shape is hidden
   by another); background under moved groups comes from the key where it is visible.
6. A confidence per in-between says how much of what changed between the keys the groups explain.

Textured frames (not flat colour) and pictures with too many moving regions are left to dense
flow (warp.py); `ShapeInterpolator.usable` says which.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from .assign import assign
from .fill import push_pull_fill
from .segment import Segmentation, segment

log = logging.getLogger(__name__)

TOO_LARGE = "motion too large for the flow engine: try ToonCrafter, or add a breakdown key"
CHANGED = 40  # max channel difference (0..255) from which a pixel has changed between the keys


@dataclass
class ShapeSettings:
    analysis_side: int = 640  # longest side the keys are segmented and matched on
    refine: bool = True  # ECC refinement of each group's transform
    deform: bool = True  # dense flow inside each group after its transform (squash, limbs)
    samples: int = 400  # pixels per group that score a candidate transform
    turn_step: int = 12  # degrees between the candidate rotations
    max_moving_regions: int = 120  # more moving regions per key: left to dense flow
    min_flat: float = 0.6  # flat-colour share of the start key below which dense flow takes over
    unmatched_cost: float = 3.0
    large_motion: float = 0.05  # a group moving further than this (fraction of the picture's
    # diagonal) is moved by shape; smaller motions are dense flow's (it is better at them)
    max_error: float = 0.2  # ... and only when its transform explains it this well (0..1)


SHAPE_PRESETS = {"best": {}, "fast": {"analysis_side": 400, "refine": False, "samples": 250, "turn_step": 20}}


def _grey_dis() -> cv2.DISOpticalFlow:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setUseMeanNormalization(True)
    return dis


def deformation(image_a: np.ndarray, image_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray,
                matrix: np.ndarray, margin: int = 8):
    """What the affine does not explain: dense flows between key a carried onto b by `matrix`
    (a') and b, on a box around the group in b's coordinates, with everything outside the group
    painted one grey so only the group's own lines steer the flow.

    Returns (x0, y0, g_ab, g_ba, error): a'(z) ~ b(z + g_ab(z)) and b(z) ~ a'(z + g_ba(z)) for z
    in the box (offset x0, y0), and the group's remaining colour error (0..1) after the flow."""
    h, w = mask_b.shape
    moved_mask = cv2.warpAffine(mask_a.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
    ys, xs = np.nonzero(moved_mask | mask_b)
    if xs.size == 0:
        return None
    x0, y0 = max(0, xs.min() - margin), max(0, ys.min() - margin)
    x1, y1 = min(w, xs.max() + margin + 1), min(h, ys.max() + margin + 1)
    if x1 - x0 < 12 or y1 - y0 < 12:
        return None
    box = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    size = (int(x1 - x0), int(y1 - y0))
    moved = cv2.warpAffine(image_a, box[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside_a = cv2.warpAffine(mask_a.astype(np.uint8), box[:2], size, flags=cv2.INTER_NEAREST) > 0
    crop_b = image_b[y0:y1, x0:x1]
    inside_b = mask_b[y0:y1, x0:x1]
    grey_a = np.where(inside_a, cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY), 128).astype(np.uint8)
    grey_b = np.where(inside_b, cv2.cvtColor(np.ascontiguousarray(crop_b), cv2.COLOR_RGB2GRAY), 128).astype(np.uint8)
    dis = _grey_dis()
    g_ab = dis.calc(grey_a, grey_b, None)
    g_ba = dis.calc(grey_b, grey_a, None)
    bh, bw = grey_b.shape
    gx, gy = np.meshgrid(np.arange(bw, dtype=np.float32), np.arange(bh, dtype=np.float32))
    back = cv2.remap(moved, gx + g_ba[..., 0], gy + g_ba[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.abs(back.astype(np.float32) - crop_b.astype(np.float32)).max(axis=2)
    diff = cv2.erode(diff, np.ones((3, 3), np.uint8))  # a line one pixel off is no error
    error = float(np.mean(np.minimum(diff[inside_b], 120.0) / 120.0)) if inside_b.any() else 1.0
    return int(x0), int(y0), g_ab, g_ba, error


@dataclass
class Group:
    """Regions that move together: ids in each key's segmentation, and the transform a -> b."""

    regions_a: list[int]
    regions_b: list[int]
    matrix: np.ndarray | None = None  # 2x3, analysis pixels of a -> of b; None: appears/disappears
    error: float = 1.0  # 0 (the warped a matches b exactly) .. 1
    depth: float = 0.0  # larger: in front
    kind: str = "moved"  # "moved", "appears" (only in b), "disappears" (only in a)
    full: dict = field(default_factory=dict)  # full-resolution masks and transform (set up later)


@dataclass
class Correspondence:
    """Result of matching the moving regions of two keys."""

    pairs: list[tuple[list[int], list[int]]]  # (regions in a, regions in b)
    appears: list[int]  # regions of b without a partner
    disappears: list[int]  # regions of a without a partner

    @property
    def splits(self) -> list[tuple[list[int], list[int]]]:
        return [p for p in self.pairs if len(p[1]) > 1]

    @property
    def merges(self) -> list[tuple[list[int], list[int]]]:
        return [p for p in self.pairs if len(p[0]) > 1]


def flat_share(rgb8: np.ndarray) -> float:
    gradient = cv2.morphologyEx(rgb8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return float((gradient.max(axis=2) <= 4).mean())


def camera_pan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The picture's shift a -> b (x, y pixels; b(x + pan) = a(x) for the background), or zero:
    the median of a coarse dense flow, kept only when it makes clearly more of the picture agree
    than no shift does."""
    scale = min(1.0, 256 / max(a.shape[:2]))
    small = [cv2.cvtColor(cv2.resize(x, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
             for x in (a, b)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flow = dis.calc(small[0], small[1], None)
    pan = np.median(flow.reshape(-1, 2), axis=0) / scale
    if np.hypot(*pan) < 1.0:
        return np.zeros(2)
    still = (cv2.absdiff(a, b).max(axis=2) < CHANGED).mean()
    moved = (cv2.absdiff(a, shift_image(b, pan)).max(axis=2) < CHANGED).mean()
    return pan if moved > 1.2 * still and moved > 0.5 else np.zeros(2)


def shift_image(image: np.ndarray, by: np.ndarray) -> np.ndarray:
    """out(x) = image(x + by), bilinear, edges repeated."""
    matrix = np.array([[1, 0, by[0]], [0, 1, by[1]]], np.float64)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def moving_regions(seg: Segmentation, own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Bool per region id: its outline does not stay put in the other key (a region whose border
    band mostly keeps its colours is static, even when something new covers part of it)."""
    nearest = seg.nearest
    edge = np.zeros(nearest.shape, bool)
    edge[:, 1:] |= nearest[:, 1:] != nearest[:, :-1]
    edge[:, :-1] |= nearest[:, 1:] != nearest[:, :-1]
    edge[1:, :] |= nearest[1:, :] != nearest[:-1, :]
    edge[:-1, :] |= nearest[1:, :] != nearest[:-1, :]
    radius = max(1, int(math.ceil(seg.ink_width)))
    band = cv2.dilate(edge.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)
    same = cv2.absdiff(own, other).max(axis=2) < CHANGED
    ids = nearest[band]
    total = np.bincount(ids, minlength=seg.count).astype(np.float64)
    kept = np.bincount(ids, same[band].astype(np.float64), minlength=seg.count)
    stay = np.where(total > 0, kept / np.maximum(total, 1), 1.0)
    inside = np.bincount(seg.labels.ravel(), same.ravel().astype(np.float64), minlength=seg.count)
    inside = inside / np.maximum(seg.area, 1)
    moving = (stay < 0.6) | (inside < 0.5)
    moving[0] = False
    # A region over a fifth of the picture is background (it moves with the camera, if at all).
    moving &= seg.area < 0.2 * nearest.size
    return moving


def _neighbour_signature(seg: Segmentation, region: int) -> dict[tuple[int, int, int], float]:
    nbrs = seg.neighbours(region)
    if nbrs.size == 0:
        return {}
    weights = seg.adjacency[region, nbrs].astype(np.float64)
    weights /= weights.sum()
    out: dict[tuple[int, int, int], float] = {}
    for n, wgt in zip(nbrs, weights):
        key = tuple(int(c) // 40 for c in seg.colour[n])
        out[key] = out.get(key, 0.0) + float(wgt)
    return out


def region_costs(a: Segmentation, b: Segmentation, ia: np.ndarray, ib: np.ndarray, diag: float) -> np.ndarray:
    """Cost of pairing region ia[i] of a with ib[j] of b (inf: never)."""
    colour = np.linalg.norm(a.colour[ia, None, :] - b.colour[None, ib, :], axis=2)
    area = np.abs(np.log(np.maximum(a.area[ia, None], 1) / np.maximum(b.area[None, ib], 1)))
    shape = (np.abs(np.log((a.axes[ia, None, 0] + 1) / (b.axes[None, ib, 0] + 1)))
             + np.abs(np.log((a.axes[ia, None, 1] + 1) / (b.axes[None, ib, 1] + 1))))
    dist = np.linalg.norm(a.centroid[ia, None, :] - b.centroid[None, ib, :], axis=2) / diag
    sig_a = [_neighbour_signature(a, int(r)) for r in ia]
    sig_b = [_neighbour_signature(b, int(r)) for r in ib]
    context = np.array([[1.0 - sum(min(v, sb.get(k, 0.0)) for k, v in sa.items()) for sb in sig_b] for sa in sig_a])
    cost = colour / 20.0 + area / 0.4 + shape / 0.6 + dist / 0.3 + context / 0.5
    ok = (colour < 45) & (area < math.log(4.0)) & (dist < 0.6)
    return np.where(ok, cost, np.inf)


def match_regions(a: Segmentation, b: Segmentation, moving_a: np.ndarray, moving_b: np.ndarray,
                  unmatched_cost: float = 3.0) -> Correspondence:
    """Region correspondence between the moving regions of two keys (see the module docstring)."""
    h, w = a.labels.shape
    diag = math.hypot(w, h)
    ia = np.flatnonzero(moving_a)
    ib = np.flatnonzero(moving_b)
    pairs_idx = assign(region_costs(a, b, ia, ib, diag), unmatched_cost) if ia.size and ib.size else []
    pairs = [([int(ia[i])], [int(ib[j])]) for i, j in pairs_idx]
    used_a = {r for p in pairs for r in p[0]}
    used_b = {r for p in pairs for r in p[1]}
    # Splits and merges: a leftover region of the same colour touching a pair's region in its key,
    # which brings the pair's areas closer, joins the pair.
    for side, seg, moving, used in ((1, b, ib, used_b), (0, a, ia, used_a)):
        other = a if side == 1 else b
        for region in moving:
            region = int(region)
            if region in used:
                continue
            best, gain = None, 0.0
            for k, pair in enumerate(pairs):
                own, opposite = pair[side], pair[1 - side]
                if not any(seg.adjacency[region, r] > 0 for r in own):
                    continue
                if np.linalg.norm(seg.colour[region] - other.colour[opposite[0]]) > 30:
                    continue
                target = other.area[opposite].sum()
                before = abs(math.log(max(seg.area[own].sum(), 1) / max(target, 1)))
                after = abs(math.log(max(seg.area[own].sum() + seg.area[region], 1) / max(target, 1)))
                if before - after > gain:
                    best, gain = k, before - after
            if best is not None:
                pairs[best][side].append(region)
                used.add(region)
    appears = [int(r) for r in ib if int(r) not in used_b]
    disappears = [int(r) for r in ia if int(r) not in used_a]
    return Correspondence(pairs, appears, disappears)


def _touching(seg: Segmentation, first: list[int], second: list[int]) -> int:
    return int(seg.adjacency[np.ix_(first, second)].sum())


def group_regions(a: Segmentation, b: Segmentation, match: Correspondence,
                  together: Callable[[int, int], bool] | None = None) -> list[Group]:
    """Pairs that touch in both keys (and, when `together` is given, move alike) form one group;
    a partnerless region inside a group's outline belongs to it; the other partnerless regions
    appear or disappear."""
    n = len(match.pairs)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            pi, pj = match.pairs[i], match.pairs[j]
            if _touching(a, pi[0], pj[0]) > 0 and _touching(b, pi[1], pj[1]) > 0:
                if together is None or together(i, j):
                    parent[root(i)] = root(j)
    groups: dict[int, Group] = {}
    for i, (ra, rb) in enumerate(match.pairs):
        g = groups.setdefault(root(i), Group([], []))
        g.regions_a += ra
        g.regions_b += rb
    result = list(groups.values())
    hulls = {side: [_hull(seg, g.regions_a if side == 0 else g.regions_b) for g in result]
             for side, seg in ((0, a), (1, b))}
    loose: list[Group] = []
    for side, seg, leftovers in ((0, a, match.disappears), (1, b, match.appears)):
        for region in leftovers:
            # Inside a group's outline (an eye, a highlight, the far side of a stripe): part of it.
            best, share = None, 0.0
            inside = seg.labels == region
            area = max(int(inside.sum()), 1)
            for g, hull in zip(result, hulls[side]):
                if hull is None:
                    continue
                s = float(hull[inside].sum()) / area
                if s > share:
                    best, share = g, s
            if best is not None and share >= 0.8:
                (best.regions_a if side == 0 else best.regions_b).append(region)
            else:
                loose.append(Group([region], [], kind="disappears") if side == 0
                             else Group([], [region], kind="appears"))
    return result + loose


def merge_loose(a: Segmentation, b: Segmentation, loose: list[Group]) -> list[Group]:
    """Touching partnerless regions of one key disappear (or appear) together."""
    merged: list[Group] = []
    for g in loose:
        for m in merged:
            if m.kind == g.kind:
                seg = a if g.kind == "disappears" else b
                mine = g.regions_a or g.regions_b
                theirs = m.regions_a or m.regions_b
                if _touching(seg, mine, theirs) > 0:
                    m.regions_a += g.regions_a
                    m.regions_b += g.regions_b
                    break
        else:
            merged.append(g)
    return merged


def _hull(seg: Segmentation, regions: list[int]) -> np.ndarray | None:
    """The filled convex hull of some regions (bool image), or None when there are none."""
    if not regions:
        return None
    lookup = np.zeros(seg.count, bool)
    lookup[regions] = True
    ys, xs = np.nonzero(lookup[seg.labels])
    if xs.size < 3:
        return None
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
    out = np.zeros(seg.labels.shape, np.uint8)
    cv2.fillConvexPoly(out, hull, 1)
    return out.astype(bool)


def group_mask(seg: Segmentation, regions: list[int], changed: np.ndarray) -> np.ndarray:
    """The group's pixels: its regions and the ink around them that belongs to it (the ink that
    is nearest to it, or that changes between the keys)."""
    lookup = np.zeros(seg.count, bool)
    lookup[regions] = True
    core = lookup[seg.labels]
    radius = max(1, int(math.ceil(1.5 * seg.ink_width)))
    near = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))).astype(bool)
    ink = seg.ink & near & (lookup[seg.nearest] | changed)
    return core | ink


def _travel(matrix: np.ndarray, mask: np.ndarray) -> float:
    """How far the group's pixels move at most (its box's corners under the transform)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0.0
    corners = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.min(), ys.max()], [xs.max(), ys.max()]],
                       np.float64)
    return float(np.linalg.norm(_apply(matrix, corners) - corners, axis=1).max())


def _sqrt_cov(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre = points.mean(axis=0)
    cov = np.cov((points - centre).T) + np.eye(2) * 0.25
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 1e-3)
    root = vecs @ np.diag(np.sqrt(vals)) @ vecs.T
    inv_root = vecs @ np.diag(1 / np.sqrt(vals)) @ vecs.T
    return centre, root, inv_root


def _angle(linear: np.ndarray) -> float:
    """The rotation (radians) of a 2x2 map's polar decomposition."""
    u, _, vt = np.linalg.svd(linear)
    rot = u @ vt
    return math.atan2(rot[1, 0], rot[0, 0])


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix.astype(np.float64))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


class _Sampler:
    """Colour and mask samples of one group in one key, for scoring candidate transforms."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, count: int = 700) -> None:
        ys, xs = np.nonzero(mask)
        pick = np.linspace(0, len(xs) - 1, min(count, len(xs))).astype(np.int64)
        self.points = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
        self.colours = image[ys[pick], xs[pick]].astype(np.float32)
        self.image, self.mask = image, mask

    def error_into(self, other: _Sampler, matrix: np.ndarray) -> float:
        """Mean mismatch of this group's samples mapped by `matrix` into the other key."""
        p = np.rint(_apply(matrix, self.points)).astype(np.int64)
        h, w = other.mask.shape
        inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
        px, py = np.clip(p[:, 0], 0, w - 1), np.clip(p[:, 1], 0, h - 1)
        hit = other.mask[py, px] & inside
        diff = np.abs(other.image[py, px].astype(np.float32) - self.colours).max(axis=1)
        return float(np.mean(np.where(hit, np.minimum(diff, 120.0) / 120.0, 1.0)))


def estimate_transform(image_a: np.ndarray, image_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray,
                       refine: bool = True, guess: np.ndarray | None = None, samples: int = 700,
                       step: int = 10) -> tuple[np.ndarray, float]:
    """Affine a -> b of one group (2x3) and its error (0..1): moments give the stretch, the
    rotation is the one whose colours agree best, ECC refines on the pixels."""
    sa, sb = _Sampler(image_a, mask_a, samples), _Sampler(image_b, mask_b, samples)
    ca, _, inv_a = _sqrt_cov(sa.points)
    cb, root_b, _ = _sqrt_cov(sb.points)
    uniform = math.sqrt(max(mask_b.sum(), 1) / max(mask_a.sum(), 1))

    def score(matrix):
        # A symmetric shape fits turned by 90 or 180 degrees as well: the least turn wins a tie.
        turn = abs(_angle(matrix[:, :2])) / math.pi
        return 0.5 * (sa.error_into(sb, matrix) + sb.error_into(sa, _invert(matrix))) + 0.03 * turn

    best, best_err = None, np.inf
    if guess is not None:
        best, best_err = guess, score(guess)
    for degrees in range(0, 360, step):
        rot = _rotation(math.radians(degrees))
        for linear in (root_b @ rot @ inv_a, uniform * rot):
            matrix = np.hstack([linear, (cb - linear @ ca)[:, None]])
            err = score(matrix)
            if err < best_err:
                best, best_err = matrix, err
    assert best is not None
    if refine and best_err > 0.02:
        refined = _refine_ecc(image_a, image_b, mask_a, mask_b, best)
        if refined is not None:
            err = score(refined)
            if err < best_err:
                best, best_err = refined, err
    return best, best_err


def _refine_ecc(image_a: np.ndarray, image_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray,
                matrix: np.ndarray) -> np.ndarray | None:
    """ECC on grey levels: the template is b's box around the group, the input all of a with the
    group's pixels (ECC's mask is on its input image)."""
    ys, xs = np.nonzero(mask_b)
    h, w = mask_b.shape
    x0, y0 = max(0, xs.min() - 4), max(0, ys.min() - 4)
    x1, y1 = min(w, xs.max() + 5), min(h, ys.max() + 5)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    grey_a = cv2.cvtColor(image_a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    template = cv2.cvtColor(np.ascontiguousarray(image_b[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    amask = cv2.dilate(mask_a.astype(np.uint8), np.ones((5, 5), np.uint8))
    back = _invert(matrix)  # b -> a, global; in template coordinates x_b = x_c + offset
    offset = np.array([x0, y0], np.float64)
    warp = np.hstack([back[:, :2], (back[:, :2] @ offset + back[:, 2])[:, None]]).astype(np.float32)
    try:
        _, warp = cv2.findTransformECC(template, grey_a, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4), amask, 3)
    except cv2.error:
        return None
    warp = warp.astype(np.float64)
    back = np.hstack([warp[:, :2], (warp[:, 2] - warp[:, :2] @ offset)[:, None]])
    return _invert(back)


def interpolate_linear(linear: np.ndarray, t: float) -> np.ndarray:
    """The 2x2 part at time t: rotation and stretch (polar decomposition) interpolated apart, so
    a turning shape keeps its size."""
    u, s, vt = np.linalg.svd(linear)
    rot = u @ vt
    if np.linalg.det(rot) < 0:  # a mirror: no rotation to interpolate
        return (1 - t) * np.eye(2) + t * linear
    stretch = vt.T @ np.diag(s) @ vt
    theta = math.atan2(rot[1, 0], rot[0, 0])
    return _rotation(t * theta) @ ((1 - t) * np.eye(2) + t * stretch)


def transform_at(matrix: np.ndarray, centre: np.ndarray, t: float, arc: np.ndarray) -> np.ndarray:
    """2x3 map from key a to time t: the centre travels from `centre` to its image under `matrix`
    on a straight line bent by `arc` (the path's offset at t = 0.5, pixels), the shape turns and
    stretches meanwhile."""
    linear = interpolate_linear(matrix[:, :2], t)
    end = matrix[:, :2] @ centre + matrix[:, 2]
    position = (1 - t) * centre + t * end + 4.0 * t * (1 - t) * arc
    return np.hstack([linear, (position - linear @ centre)[:, None]])


class ShapeInterpolator:
    """In-betweens of one segment of 8-bit RGB flat-colour keys (see the module docstring)."""

    def __init__(self, start: np.ndarray, end: np.ndarray, settings: ShapeSettings | None = None,
                 arc: tuple[float, float] = (0.0, 0.0)) -> None:
        self.settings = s = settings or ShapeSettings()
        self.start, self.end = start, end
        self.h, self.w = start.shape[:2]
        self.arc = np.array(arc, np.float64) * np.array([self.w, self.h])  # fractions -> pixels
        self.groups: list[Group] = []
        self.usable = False
        self.reason = ""
        self.confidence = 1.0
        self.pan = np.zeros(2)
        self.handled: list[int] = []
        self.shape_share, self.shape_quality = 0.0, 1.0
        scale = min(1.0, s.analysis_side / max(self.h, self.w))
        self.scale = scale
        if scale < 1.0:
            size = (max(8, round(self.w * scale)), max(8, round(self.h * scale)))
            small_a = cv2.resize(start, size, interpolation=cv2.INTER_AREA)
            small_b = cv2.resize(end, size, interpolation=cv2.INTER_AREA)
        else:
            small_a, small_b = start, end
        if flat_share(small_a) < s.min_flat:
            self.reason = "not a flat-colour drawing"
            return
        self.seg_a, self.seg_b = segment(small_a), segment(small_b)
        pan = camera_pan(small_a, small_b)
        moving_a = moving_regions(self.seg_a, small_a, shift_image(small_b, pan))
        moving_b = moving_regions(self.seg_b, small_b, shift_image(small_a, -pan))
        self.pan = pan / scale
        if max(moving_a.sum(), moving_b.sum()) > s.max_moving_regions:
            self.reason = f"{int(max(moving_a.sum(), moving_b.sum()))} moving regions"
            return
        self.match = match_regions(self.seg_a, self.seg_b, moving_a, moving_b, s.unmatched_cost)
        changed = cv2.absdiff(small_a, small_b).max(axis=2) >= CHANGED
        if pan.any():  # the camera's move alone is no change
            changed &= cv2.absdiff(small_a, shift_image(small_b, pan)).max(axis=2) >= CHANGED
        # Coarse groups (touching in both keys) stay whole unless splitting them into parts that
        # move alike explains the keys clearly better (overlapping characters moving apart).
        coarse = group_regions(self.seg_a, self.seg_b, self.match)
        fine = group_regions(self.seg_a, self.seg_b, self.match, self._moving_alike(small_a, small_b, changed))
        loose = [g for g in coarse if g.kind != "moved"]
        masks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        moved: list[Group] = []
        for g in (g for g in coarse if g.kind == "moved"):
            masks[id(g)] = self._masks(g, changed)
            g.matrix, g.error = estimate_transform(small_a, small_b, *masks[id(g)], s.refine, samples=s.samples, step=s.turn_step)
            parts = [f for f in fine if f.kind == "moved" and set(f.regions_a) <= set(g.regions_a)]
            if len(parts) > 1 and g.error > 0.1:
                weights, errors = [], []
                for f in parts:
                    masks[id(f)] = self._masks(f, changed)
                    f.matrix, f.error = estimate_transform(small_a, small_b, *masks[id(f)], s.refine, samples=s.samples, step=s.turn_step)
                    weights.append(float(masks[id(f)][0].sum()))
                    errors.append(f.error)
                if np.average(errors, weights=weights) < g.error - 0.08:
                    moved += parts
                    continue
            moved.append(g)
        # A partnerless region that the group's shape, carried into its key, covers is part of the
        # group (the far side of a turning ball, a cap cut off by a stripe).
        attached = self._attach(moved, loose, masks)
        for g in attached:
            masks[id(g)] = self._masks(g, changed)
            g.matrix, g.error = estimate_transform(small_a, small_b, *masks[id(g)], s.refine, g.matrix, s.samples, s.turn_step)
        if s.deform:
            for g in moved:
                field = deformation(small_a, small_b, *masks[id(g)], g.matrix)
                if field is not None and field[4] < g.error:
                    g.full["deform"] = field[:4]
                    g.error = field[4]
        loose = merge_loose(self.seg_a, self.seg_b, [g for g in loose if g.regions_a or g.regions_b])
        for g in loose:  # only their own ink: a changed line near them belongs to whatever moved
            masks[id(g)] = self._masks(g, np.zeros_like(changed))
        self.groups = moved + loose
        masks_a = [masks[id(g)][0] for g in self.groups]
        masks_b = [masks[id(g)][1] for g in self.groups]
        self._order(masks_a, masks_b)
        diag = math.hypot(*changed.shape)
        # Shapes move a group when it travels far, its transform explains it, and it does not
        # touch another group moving its own way (a piece of a larger, differently moving whole:
        # dense flow is safer there).
        moved_ids = [i for i, g in enumerate(self.groups) if g.kind == "moved"]
        self.handled = [i for i in moved_ids
                        if self.groups[i].error <= s.max_error
                        and _travel(self.groups[i].matrix, masks_a[i]) >= s.large_motion * diag
                        and not any(self._touch(i, j) for j in moved_ids if j != i)]
        self.shape_share, self.shape_quality = self._explained(changed, masks_a, masks_b)
        self.confidence = self.shape_quality
        self._full_resolution(masks_a, masks_b)
        self.usable = True

    # -- set-up ----------------------------------------------------------------------------------

    def _touch(self, i: int, j: int) -> bool:
        gi, gj = self.groups[i], self.groups[j]
        return (_touching(self.seg_a, gi.regions_a, gj.regions_a) > 0
                or _touching(self.seg_b, gi.regions_b, gj.regions_b) > 0)

    def _masks(self, g: Group, changed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros(changed.shape, bool)
        return (group_mask(self.seg_a, g.regions_a, changed) if g.regions_a else empty,
                group_mask(self.seg_b, g.regions_b, changed) if g.regions_b else empty)

    def _moving_alike(self, small_a: np.ndarray, small_b: np.ndarray, changed: np.ndarray) -> Callable[[int, int], bool]:
        """Whether two touching pairs move alike: one transform explains both about as well as
        each pair's own transform explains it (quick estimates: coarse rotations, few samples)."""
        masks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        errors: dict[int, float] = {}

        def quick(ma, mb):
            return estimate_transform(small_a, small_b, ma, mb, refine=False, samples=200, step=24)[1]

        def own(i):
            if i not in errors:
                ra, rb = self.match.pairs[i]
                masks[i] = self._masks(Group(list(ra), list(rb)), changed)
                errors[i] = quick(*masks[i])
            return errors[i]

        def alike(i, j):
            worst = max(own(i), own(j))
            joint = quick(masks[i][0] | masks[j][0], masks[i][1] | masks[j][1])
            return bool(joint <= worst + 0.04)

        return alike

    def _attach(self, moved: list[Group], loose: list[Group], masks: dict) -> list[Group]:
        changed_groups = []
        h, w = self.seg_a.labels.shape
        predicted = {}
        for g in moved:
            ma, mb = masks[id(g)]
            predicted[id(g)] = (cv2.warpAffine(mb.astype(np.uint8), _invert(g.matrix), (w, h), flags=cv2.INTER_NEAREST) > 0,
                                cv2.warpAffine(ma.astype(np.uint8), g.matrix, (w, h), flags=cv2.INTER_NEAREST) > 0)
        for lg in loose:
            side = 0 if lg.kind == "disappears" else 1
            seg = self.seg_a if side == 0 else self.seg_b
            region = (lg.regions_a or lg.regions_b)[0]
            pixels = seg.labels == region
            area = max(int(pixels.sum()), 1)
            best, share = None, 0.0
            for g in moved:
                cover = float(predicted[id(g)][side][pixels].sum()) / area
                if cover > share:
                    best, share = g, cover
            if best is not None and share >= 0.6:
                (best.regions_a if side == 0 else best.regions_b).append(region)
                lg.regions_a, lg.regions_b = [], []
                if best not in changed_groups:
                    changed_groups.append(best)
        return changed_groups

    def _order(self, masks_a: list[np.ndarray], masks_b: list[np.ndarray]) -> None:
        """Depth from the keys: where group p's shape, carried into a key, lands on group q's
        visible pixels there, q is in front of p."""
        n = len(self.groups)
        front = np.zeros((n, n))
        h, w = masks_a[0].shape if n else (0, 0)
        for p, gp in enumerate(self.groups):
            if gp.matrix is None:
                continue
            into_b = cv2.warpAffine(masks_a[p].astype(np.uint8), gp.matrix, (w, h), flags=cv2.INTER_NEAREST) > 0
            into_a = cv2.warpAffine(masks_b[p].astype(np.uint8), _invert(gp.matrix), (w, h),
                                    flags=cv2.INTER_NEAREST) > 0
            for q in range(n):
                if q != p:
                    front[q, p] += (into_b & masks_b[q] & ~masks_b[p]).sum() + (into_a & masks_a[q] & ~masks_a[p]).sum()
        votes = front - front.T
        for p, g in enumerate(self.groups):
            g.depth = float(np.sign(votes[p]).sum())

    def _explained(self, changed: np.ndarray, masks_a, masks_b) -> tuple[float, float]:
        """(share of the changed pixels that the shape-moved groups cover, how well their
        transforms explain those pixels, 0..1)."""
        total = changed.sum()
        if total == 0 or not self.handled:
            return 0.0, 1.0
        quality = np.zeros(changed.shape, np.float32)
        covered = np.zeros(changed.shape, bool)
        for i in self.handled:
            g, cover = self.groups[i], masks_a[i] | masks_b[i]
            np.maximum(quality, np.where(cover, 1.0 - min(1.0, g.error / 0.5), 0.0).astype(np.float32), out=quality)
            covered |= cover
        inside = changed & covered
        if not inside.any():
            return 0.0, 1.0
        return float(inside.sum() / total), float(quality[inside].mean())

    def combined_confidence(self, flow_reliability: float) -> float:
        """The segment's confidence: shape quality where shapes moved, dense flow's elsewhere."""
        return float(self.shape_share * self.shape_quality + (1.0 - self.shape_share) * flow_reliability)

    def _full_resolution(self, masks_a, masks_b) -> None:
        inv = 1.0 / self.scale
        # Pixel centres: small x = (full x + 0.5) * scale - 0.5.
        shift = 0.5 * self.scale - 0.5
        down = np.array([[self.scale, 0, shift], [0, self.scale, shift], [0, 0, 1]])
        up = np.linalg.inv(down)
        moving_a = np.zeros((self.h, self.w), np.float32)
        moving_b = np.zeros((self.h, self.w), np.float32)
        for g, ma, mb in zip(self.groups, masks_a, masks_b):
            for key, mask, total in (("a", ma, moving_a), ("b", mb, moving_b)):
                crop = self._upscale(mask)
                g.full[key] = crop
                if crop is not None:
                    x0, y0, m = crop
                    region = total[y0:y0 + m.shape[0], x0:x0 + m.shape[1]]
                    np.maximum(region, m, out=region)
            if g.matrix is not None:
                full = (up @ np.vstack([g.matrix, [0, 0, 1]]) @ down)[:2]
                g.full["matrix"] = full
                pts = np.argwhere(ma)
                centre = pts[:, ::-1].mean(axis=0) if len(pts) else np.zeros(2)
                g.full["centre"] = (centre + 0.5) * inv - 0.5
        self.moving_a, self.moving_b = moving_a, moving_b
        self.handled_a = self._union([self.groups[i].full.get("a") for i in self.handled])
        self.handled_b = self._union([self.groups[i].full.get("b") for i in self.handled])
        # The background trusts a key only a little away from its groups (their outlines'
        # anti-aliased rims would leave a ghost ring).
        rim = np.ones((5, 5), np.uint8)
        self.free_a = (1.0 - cv2.dilate(moving_a, rim))[..., None]
        self.free_b = (1.0 - cv2.dilate(moving_b, rim))[..., None]
        self.order = sorted(range(len(self.groups)), key=lambda i: self.groups[i].depth)

    def _union(self, crops) -> np.ndarray:
        total = np.zeros((self.h, self.w), np.float32)
        for crop in crops:
            if crop is not None:
                x0, y0, m = crop
                region = total[y0:y0 + m.shape[0], x0:x0 + m.shape[1]]
                np.maximum(region, m, out=region)
        return total

    def clean_plates(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys without the shape-moved groups: where a group was, the other key's picture
        (carried by the pan) where it shows what is behind, else a fill from around. Dense flow
        in-betweens these, so it never tears a group apart."""
        rim = np.ones((5, 5), np.uint8)
        hide_a = cv2.dilate(self.handled_a, rim) > 0.01
        hide_b = cv2.dilate(self.handled_b, rim) > 0.01
        a, b = self.start.astype(np.float32), self.end.astype(np.float32)
        plates = []
        for own, hide, other, other_hide, by in ((a, hide_a, b, hide_b, self.pan), (b, hide_b, a, hide_a, -self.pan)):
            seen = shift_image(other, by) if by.any() else other
            seen_hide = (shift_image(other_hide.astype(np.float32), by) > 0.01) if by.any() else other_hide
            plate = own.copy()
            use = hide & ~seen_hide
            plate[use] = seen[use]
            missing = hide & seen_hide
            if missing.any():
                plate = push_pull_fill(plate, ~missing)
            plates.append(np.clip(plate + 0.5, 0, 255).astype(np.uint8))
        return plates[0], plates[1]

    def _upscale(self, mask: np.ndarray):
        """(x0, y0, float32 mask crop) at full resolution, or None for an empty mask."""
        if not mask.any():
            return None
        ys, xs = np.nonzero(mask)
        inv = 1.0 / self.scale
        sx0, sy0 = max(0, xs.min() - 1), max(0, ys.min() - 1)
        sx1, sy1 = min(mask.shape[1], xs.max() + 2), min(mask.shape[0], ys.max() + 2)
        crop = mask[sy0:sy1, sx0:sx1].astype(np.float32)
        if self.scale == 1.0:
            return int(sx0), int(sy0), crop
        x0, y0 = int(math.floor(sx0 * inv)), int(math.floor(sy0 * inv))
        x1, y1 = min(self.w, int(math.ceil(sx1 * inv))), min(self.h, int(math.ceil(sy1 * inv)))
        # Sample the small crop at the full pixels' centres.
        fx = (np.arange(x0, x1, dtype=np.float32) + 0.5) * self.scale - 0.5 - sx0
        fy = (np.arange(y0, y1, dtype=np.float32) + 0.5) * self.scale - 0.5 - sy0
        mx, my = (m.astype(np.float32) for m in np.meshgrid(fx, fy))
        big = cv2.remap(crop, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return x0, y0, big

    # -- in-betweens -----------------------------------------------------------------------------

    def confidence_at(self, t: float) -> float:
        """Lower in the middle of the segment, where the in-between is furthest from both keys."""
        return float(1.0 - (1.0 - self.confidence) * math.sqrt(1.0 - abs(2.0 * t - 1.0)))

    def frame(self, t: float, base: np.ndarray | None = None) -> np.ndarray:
        """The in-between at t. With `base` (dense flow's in-between of the clean plates), the
        shape-moved groups are drawn over it; without, every group is drawn over the keys'
        background (shapes only)."""
        if base is not None:  # only the groups' boxes change: the keys are sampled as bytes
            out = base.copy()
            for i in self.order:
                if i in self.handled:
                    self._draw_moved(out, self.groups[i], self.start, self.end, t)
            return out
        a = self.start.astype(np.float32)
        b = self.end.astype(np.float32)
        out = self._background(a, b, t)
        for i in self.order:
            g = self.groups[i]
            if g.kind == "moved":
                self._draw_moved(out, g, a, b, t)
            elif (g.kind == "disappears" and t < 0.5) or (g.kind == "appears" and t >= 0.5):
                self._draw_still(out, g, a if g.kind == "disappears" else b)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _background(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """What lies behind the groups: each key where no group covers it, carried by the camera's
        pan and blended in time; what neither key shows is filled from around."""
        free_a, free_b = self.free_a, self.free_b
        if self.pan.any():
            a, free_a = shift_image(a, -t * self.pan), shift_image(free_a[..., 0], -t * self.pan)[..., None]
            b, free_b = shift_image(b, (1 - t) * self.pan), shift_image(free_b[..., 0], (1 - t) * self.pan)[..., None]
        wa, wb = (1.0 - t) * free_a, t * free_b
        weight = wa + wb
        mixed = (a * wa + b * wb) / np.maximum(weight, 1e-6)
        valid = np.maximum(free_a, free_b)[..., 0] > 0.5
        if valid.all():
            return mixed
        return push_pull_fill(mixed, valid)

    def _draw_still(self, out: np.ndarray, g: Group, image: np.ndarray) -> None:
        crop = g.full.get("a") if g.kind == "disappears" else g.full.get("b")
        if crop is None:
            return
        x0, y0, m = crop
        sl = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
        alpha = m[..., None]
        out[sl] = image[sl] * alpha + out[sl] * (1.0 - alpha)

    def _deformation_at(self, g: Group, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group's two deformation flows (full-resolution pixels) at b-coordinates z."""
        x0, y0, g_ab, g_ba = g.full["deform"]
        shift = 0.5 * self.scale - 0.5
        sx = z[..., 0] * self.scale + shift - x0
        sy = z[..., 1] * self.scale + shift - y0
        gain = np.float32(1.0 / self.scale)
        fab = cv2.remap(g_ab, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0)) * gain
        fba = cv2.remap(g_ba, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0)) * gain
        return fab, fba

    def _draw_moved(self, out: np.ndarray, g: Group, a: np.ndarray, b: np.ndarray, t: float) -> None:
        crop_a, crop_b = g.full.get("a"), g.full.get("b")
        if crop_a is None or crop_b is None:
            return
        matrix, centre = g.full["matrix"], g.full["centre"]
        at_t = transform_at(matrix, centre, t, self.arc)
        # a -> t and b -> t; the output box covers both carried shapes.
        b_to_t = np.vstack([at_t, [0, 0, 1]]) @ np.vstack([_invert(matrix), [0, 0, 1]])
        corners = []
        for (x0, y0, m), mapping in ((crop_a, at_t), (crop_b, b_to_t[:2])):
            box = np.array([[x0, y0], [x0 + m.shape[1], y0], [x0, y0 + m.shape[0]], [x0 + m.shape[1], y0 + m.shape[0]]],
                           np.float64)
            corners.append(_apply(mapping, box))
        corners = np.concatenate(corners)
        ox0, oy0 = np.floor(corners.min(axis=0)).astype(int) - 2
        ox1, oy1 = np.ceil(corners.max(axis=0)).astype(int) + 3
        ox0, oy0, ox1, oy1 = max(0, ox0), max(0, oy0), min(self.w, ox1), min(self.h, oy1)
        if ox1 <= ox0 or oy1 <= oy0:
            return
        gx, gy = np.meshgrid(np.arange(ox0, ox1, dtype=np.float64), np.arange(oy0, oy1, dtype=np.float64))
        pts = np.stack([gx, gy], axis=-1)
        t_to_a = _invert(at_t)
        to_b = np.vstack([matrix, [0, 0, 1]]) @ np.vstack([t_to_a, [0, 0, 1]])
        z = (pts @ to_b[:2, :2].T + to_b[:2, 2]).astype(np.float32)  # in b's coordinates
        in_b, z_for_a = z, z
        if "deform" in g.full:  # the shape blended: b's frame deformed part-way towards a' and back
            g_ab, g_ba = self._deformation_at(g, z)
            in_b = z + (1.0 - t) * g_ab
            z_for_a = z + t * g_ba
        b_to_a = _invert(matrix)
        in_a = z_for_a @ b_to_a[:, :2].T.astype(np.float32) + b_to_a[:, 2].astype(np.float32)
        ax, ay = np.ascontiguousarray(in_a[..., 0]), np.ascontiguousarray(in_a[..., 1])
        bx, by = np.ascontiguousarray(in_b[..., 0]), np.ascontiguousarray(in_b[..., 1])

        def sample_mask(crop, x, y):
            x0, y0, m = crop
            return cv2.remap(m, x - x0, y - y0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

        mask_a = sample_mask(crop_a, ax, ay)
        mask_b = sample_mask(crop_b, bx, by)
        # Known: not hidden behind another group and inside the picture, in that key.
        others_a = cv2.remap(self.moving_a, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1)
        others_b = cv2.remap(self.moving_b, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1)
        known_a = 1.0 - np.clip(others_a - mask_a, 0.0, 1.0)
        known_b = 1.0 - np.clip(others_b - mask_b, 0.0, 1.0)
        wa, wb = (1.0 - t) * known_a, t * known_b
        weight = wa + wb
        alpha = (wa * mask_a + wb * mask_b) / np.maximum(weight, 1e-6)
        alpha = np.clip((alpha - 0.5) * 2.0 + 0.5, 0.0, 1.0)  # a crisp outline, no ghost halo
        colour_a = cv2.remap(a, ax, ay, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        colour_b = cv2.remap(b, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        ca, cb = wa * mask_a, wb * mask_b
        share_a = ca / np.maximum(ca + cb, 1e-6)
        # Where the two keys disagree on the colour, the nearer key decides (no double image).
        disagree = np.abs(colour_a - colour_b).max(axis=2) > 48
        share_a = np.where(disagree, (share_a > 0.5).astype(np.float32), share_a)[..., None]
        colour = colour_a * share_a + colour_b * (1.0 - share_a)
        alpha = alpha[..., None]
        sl = (slice(oy0, oy1), slice(ox0, ox1))
        mixed = colour * alpha + out[sl].astype(np.float32) * (1.0 - alpha)
        out[sl] = mixed if out.dtype != np.uint8 else np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
