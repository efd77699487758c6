"""The flow engine's shape level: segmentation into ink and regions, region correspondence as an
assignment problem, per-group transforms and their interpolation, and the properties the issue
asks for: the sample shot's ball stays one ball, flat regions never break into more pieces than
the keys have, and each in-between carries an honest confidence."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.flow.assign import assign
from tooncrafter_studio.engines.flow.engine import FlowEngine
from tooncrafter_studio.engines.flow.segment import segment
from tooncrafter_studio.engines.flow.shapes import (
    TOO_LARGE,
    ShapeInterpolator,
    estimate_transform,
    interpolate_linear,
    match_regions,
    moving_regions,
    transform_at,
)

PAPER = (240, 236, 222)
INK = (24, 22, 30)
RED = (222, 70, 60)
BLUE = (70, 110, 215)
YELLOW = (250, 220, 90)
GREEN = (90, 180, 100)
SAMPLE = Path(__file__).resolve().parents[2] / "tooncrafter_studio" / "resources" / "sample_shot" / "frames"


def drawing(shapes, size=(256, 160)) -> np.ndarray:
    """Flat shapes with ink outlines on paper. shapes: (kind, centre, size, colour[, angle])."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = PAPER
    for kind, (cx, cy), extent, colour, *rest in shapes:
        angle = rest[0] if rest else 0.0
        if kind == "disc":
            cv2.circle(img, (round(cx), round(cy)), extent, colour, -1, cv2.LINE_AA)
            cv2.circle(img, (round(cx), round(cy)), extent, INK, 2, cv2.LINE_AA)
        else:  # a box, turned by `angle` degrees
            box = cv2.boxPoints(((cx, cy), (extent * 1.6, extent), angle)).astype(np.int32)
            cv2.fillConvexPoly(img, box, colour, cv2.LINE_AA)
            cv2.polylines(img, [box], True, INK, 2, cv2.LINE_AA)
    return img


# -- segmentation --------------------------------------------------------------------------------


def test_segmentation_finds_ink_and_the_flat_regions_between_it():
    img = drawing([("disc", (60, 80), 25, RED), ("box", (170, 70), 30, BLUE)])
    img[120:150, 20:60] = INK  # a thick black patch: a dark region, not a line
    seg = segment(img)
    ids = {tuple(int(c) for c in np.round(seg.colour[r] / 10)) for r in range(1, seg.count) if seg.area[r] > 50}
    assert {tuple(round(c / 10) for c in col) for col in (PAPER, RED, BLUE)} <= ids
    assert 1.5 <= seg.ink_width <= 4.5, seg.ink_width
    red = seg.labels[80, 60]
    assert red > 0 and np.abs(seg.colour[red] - RED).max() < 8
    assert seg.area[red] == pytest.approx(math.pi * 23 ** 2, rel=0.15)
    assert not seg.ink[135, 40] and seg.labels[135, 40] > 0  # the thick patch is a region
    assert seg.ink[80, 60 + 25]  # the disc's outline is ink
    paper = seg.labels[5, 5]
    assert seg.adjacency[red, paper] > 0 and seg.adjacency[red, seg.labels[70, 170]] == 0
    # Every pixel is a region's or ink; the nearest map gives ink a region too.
    assert ((seg.labels > 0) | seg.ink).all() and (seg.nearest > 0).all()


# -- assignment and correspondence ---------------------------------------------------------------


def test_assignment_is_the_cheapest_and_leaves_bad_pairs_alone():
    rng = np.random.default_rng(3)
    for n, m in ((3, 3), (4, 2), (2, 5), (5, 5)):
        cost = rng.random((n, m)) * 2
        pairs = assign(cost, unmatched=10.0)  # everything pairs when leaving alone is dearer
        best = min(sum(cost[i, j] for i, j in zip(rows, perm))
                   for rows in itertools.permutations(range(n), min(n, m))
                   for perm in [list(range(min(n, m)))] if n >= m) if n >= m else \
            min(sum(cost[i, j] for i, j in zip(range(n), cols)) for cols in itertools.permutations(range(m), n))
        assert len(pairs) == min(n, m)
        assert sum(cost[i, j] for i, j in pairs) == pytest.approx(best)
    cost = np.array([[0.1, 9.0], [9.0, np.inf]])
    assert assign(cost, unmatched=1.0) == [(0, 0)]  # the second row has no affordable partner


def test_regions_match_across_a_large_jump_with_a_split_and_an_appearance():
    a = drawing([("disc", (50, 60), 22, RED), ("box", (190, 110), 20, BLUE)])
    b = drawing([("disc", (170, 50), 22, RED), ("box", (60, 115), 20, BLUE), ("disc", (200, 125), 12, GREEN)])
    # In b the blue box is cut in two by a line: one region becomes two (a split).
    cv2.line(b, (60, 95), (60, 135), INK, 2)
    seg_a, seg_b = segment(a), segment(b)
    match = match_regions(seg_a, seg_b, moving_regions(seg_a, a, b), moving_regions(seg_b, b, a))
    red_a, red_b = seg_a.labels[60, 50], seg_b.labels[50, 170]
    blue_a = seg_a.labels[110, 190]
    halves_b = {seg_b.labels[115, 50], seg_b.labels[115, 70]}
    pairs = {tuple(p[0]): set(p[1]) for p in match.pairs}
    assert pairs[(red_a,)] == {red_b}
    assert pairs[(blue_a,)] == halves_b and len(halves_b) == 2
    assert any(set(p[1]) == halves_b for p in match.splits)
    assert seg_b.labels[125, 200] in match.appears
    assert seg_a.labels[5, 5] not in {r for p in match.pairs for r in p[0]}  # the paper does not move


# -- transforms ----------------------------------------------------------------------------------


def test_a_turned_scaled_shape_gives_back_its_transform():
    a = drawing([("box", (80, 80), 30, RED, 0.0)])
    cv2.circle(a, (92, 80), 5, YELLOW, -1)  # an off-centre spot: the turn is not ambiguous
    truth = cv2.getRotationMatrix2D((80, 80), -35, 1.15)  # OpenCV: positive = counter-clockwise
    truth[:, 2] += (90, -10)
    b = cv2.warpAffine(a, truth, (256, 160), borderValue=PAPER)
    mask_a = np.abs(a.astype(int) - PAPER).max(axis=2) > 30
    mask_b = np.abs(b.astype(int) - PAPER).max(axis=2) > 30
    matrix, error = estimate_transform(a, b, mask_a, mask_b)
    probe = np.array([[60.0, 70.0], [100.0, 95.0], [80.0, 80.0]])
    ours = probe @ matrix[:, :2].T + matrix[:, 2]
    expected = probe @ truth[:, :2].T + truth[:, 2]
    assert np.abs(ours - expected).max() < 1.5, (ours, expected)  # a wrong turn is off by tens of pixels
    assert error < 0.12  # the soft score of the sampled colours (the truth scores 0.07, 180 degrees off 0.15)


def test_interpolated_turn_keeps_the_size_and_goes_half_way():
    turn = np.array([[0.0, -1.0], [1.0, 0.0]]) * 1.5  # 90 degrees, 1.5x
    half = interpolate_linear(turn, 0.5)
    assert math.degrees(math.atan2(half[1, 0], half[0, 0])) == pytest.approx(45.0)
    assert np.sqrt(abs(np.linalg.det(half))) == pytest.approx(1.25)  # linear in scale, no shrink
    matrix = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]])
    centre = np.array([10.0, 50.0])
    straight = transform_at(matrix, centre, 0.5, np.zeros(2))
    bent = transform_at(matrix, centre, 0.5, np.array([0.0, -30.0]))
    assert straight @ [*centre, 1] == pytest.approx([60.0, 50.0])
    assert bent @ [*centre, 1] == pytest.approx([60.0, 20.0])  # through the arc at mid-segment
    assert transform_at(matrix, centre, 1.0, np.array([0.0, -30.0])) @ [*centre, 1] == pytest.approx([110.0, 50.0])


# -- the sample shot's ball ----------------------------------------------------------------------


def _read(frame: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLE / f"ball.{frame:04d}.png")), cv2.COLOR_BGR2RGB)


def ball_mask(img: np.ndarray) -> np.ndarray:
    """The ball's own colours (red, its shade, the stripe), joined across its inner lines."""
    px = img.astype(int)
    red = (px[..., 0] > 160) & (px[..., 1] < 110) & (px[..., 2] < 110)
    shade = (np.abs(px - (186, 48, 52)).max(axis=2) < 30)
    stripe = (np.abs(px - (255, 236, 120)).max(axis=2) < 30)
    stripe &= cv2.dilate((red | shade).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # not the sun
    ball = (red | shade | stripe).astype(np.uint8)
    return cv2.morphologyEx(ball, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)) > 0


def ball_pieces(img: np.ndarray) -> list[tuple[int, float, float]]:
    """(area, centre x, centre y) of each piece of ball over 20 pixels, largest first."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(ball_mask(img).astype(np.uint8))
    pieces = [(int(stats[i, cv2.CC_STAT_AREA]), *centroids[i]) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] > 20]
    return sorted(pieces, reverse=True)


@pytest.mark.skipif(not SAMPLE.exists(), reason="the sample shot is not in this checkout")
@pytest.mark.parametrize("keys", [(1, 9), (9, 17)])
@pytest.mark.parametrize("quality", ["best", "fast"])
def test_the_sample_shots_ball_stays_one_ball_between_the_keys(keys, quality):
    a, b = _read(keys[0]), _read(keys[1])
    (area_a, xa, _), (area_b, xb, _) = ball_pieces(a)[0], ball_pieces(b)[0]
    assert len(ball_pieces(a)) == len(ball_pieces(b)) == 1
    result = FlowEngine().interpolate(InterpolationRequest(a, b, [0.25, 0.5, 0.75], params={"quality": quality}))
    assert result.info["method"] == "shapes"
    for t, frame in zip((0.25, 0.5, 0.75), result.frames):
        pieces = ball_pieces(frame)
        assert len(pieces) == 1, (t, pieces)
        area, x, _ = pieces[0]
        assert 0.75 <= area / ((area_a + area_b) / 2) <= 1.25, (t, area, area_a, area_b)
        assert min(xa, xb) <= x <= max(xa, xb), (t, x, xa, xb)
        expected = xa + t * (xb - xa)
        assert abs(x - expected) < 0.2 * abs(xb - xa), (t, x, expected)


@pytest.mark.skipif(not SAMPLE.exists(), reason="the sample shot is not in this checkout")
def test_an_arc_lifts_the_ball_at_mid_segment():
    a, b = _read(1), _read(9)
    engine = FlowEngine()
    straight = engine.interpolate(InterpolationRequest(a, b, [0.5])).frames[0]
    bent = engine.interpolate(InterpolationRequest(a, b, [0.5], params={"arc": [0.0, -0.1]}))
    assert bent.info["arc"] == [0.0, -0.1]
    (_, x0, y0), (_, x1, y1) = ball_pieces(straight)[0], ball_pieces(bent.frames[0])[0]
    assert abs(x1 - x0) < 3 and y1 == pytest.approx(y0 - 0.1 * 320, abs=4)


# -- regions never break apart ---------------------------------------------------------------------


def colour_pieces(img: np.ndarray, palette, min_area: int = 12) -> dict[tuple, int]:
    """Connected pieces of each palette colour (anti-aliased edges and specks ignored)."""
    out = {}
    for colour in palette:
        mask = (np.abs(img.astype(int) - colour).max(axis=2) < 24).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out[colour] = int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())
    return out


@pytest.mark.parametrize("case", range(4))
def test_flat_regions_never_break_into_more_pieces_than_the_keys_have(case):
    rng = np.random.default_rng(case)
    shapes_a, shapes_b = [], []
    for colour in (RED, BLUE, YELLOW):
        kind = str(rng.choice(["disc", "box"]))
        size = int(rng.integers(12, 22))
        start = rng.uniform((30, 30), (226, 130))
        jump = rng.uniform(-90, 90, 2)  # large jumps: several times the shape's size
        end = np.clip(start + jump, (25, 25), (231, 135))
        angle = float(rng.uniform(-60, 60))
        shapes_a.append((kind, tuple(start), size, colour, 0.0))
        shapes_b.append((kind, tuple(end), size, colour, angle))
    a, b = drawing(shapes_a), drawing(shapes_b)
    palette = (RED, BLUE, YELLOW, PAPER)
    most = {c: max(colour_pieces(a, palette)[c], colour_pieces(b, palette)[c]) for c in palette}
    result = FlowEngine().interpolate(InterpolationRequest(a, b, [0.25, 0.5, 0.75]))
    for frame in result.frames:
        pieces = colour_pieces(frame, palette)
        assert all(pieces[c] <= most[c] for c in palette), (pieces, most)


# -- confidence ----------------------------------------------------------------------------------


def test_confidence_is_high_for_a_clean_move_and_low_with_the_message_when_nothing_matches():
    a = drawing([("disc", (60, 80), 22, RED)])
    b = drawing([("disc", (180, 70), 22, RED)])
    clean = FlowEngine().interpolate(InterpolationRequest(a, b, [0.25, 0.5, 0.75]))
    assert clean.info["method"] == "shapes"
    assert min(clean.info["confidence"]) > 0.7 and "message" not in clean.info
    assert clean.info["confidence"][1] <= clean.info["confidence"][0]  # least sure mid-segment
    # A different drawing in each key: nothing corresponds, so no fragments are invented and
    # the engine says so.
    c = drawing([("box", (60, 40), 26, BLUE, 10.0), ("disc", (200, 120), 15, YELLOW)])
    d = drawing([("disc", (150, 90), 35, GREEN), ("box", (40, 130), 12, RED, 70.0)])
    lost = FlowEngine().interpolate(InterpolationRequest(c, d, [0.5]))
    assert lost.info["confidence"][0] < 0.5 and lost.info["message"] == TOO_LARGE
    same = FlowEngine().interpolate(InterpolationRequest(a, a.copy(), [0.5]))
    assert same.info["confidence"] == [1.0]


def test_textured_frames_are_left_to_dense_flow():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (160, 256, 3), dtype=np.uint8)
    shapes = ShapeInterpolator(noise, np.roll(noise, 5, axis=1))
    assert not shapes.usable and "flat" in shapes.reason
    result = FlowEngine().interpolate(InterpolationRequest(noise, np.roll(noise, 5, axis=1), [0.5]))
    assert result.info["method"] == "flow"


def test_a_bad_arc_is_refused():
    from tooncrafter_studio.core.errors import InputError

    a = drawing([("disc", (60, 80), 22, RED)])
    for bad in ([0.0, 2.0], [float("nan"), 0.0], "up", [1.0]):
        with pytest.raises(InputError, match="arc"):
            FlowEngine().interpolate(InterpolationRequest(a, a, [0.5], params={"arc": bad}))
