"""Procedural cartoon clips for training and held-out testing of the flow engine.

Flat colour fills with dark ink outlines (ink luminance <= 60, fills >= 125, as the shared eval
assumes), over flat / dotted / gradient / cloudy paper with a wavy ground band. Characters
(blobs with faces, stars, polygons, stick figures) move on curved paths with rotation, scaling,
squash-and-stretch and limb swings, overlap each other (occlusion), and the camera may pan.
Frames are rendered at 2x and reduced (anti-aliasing). Our own generator: written from the
description of the shared public set, never from its code; clips are seeded, so a seed range
gives a fixed, reproducible set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SS = 2  # supersampling factor


def _luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def _fill_colour(rng: np.random.Generator, low: float = 130.0) -> tuple[int, int, int]:
    while True:
        c = rng.integers(60, 250, 3)
        if _luma(c) >= low:
            return tuple(int(v) for v in c)


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    base = int(rng.integers(10, 45))
    tint = rng.integers(-8, 9, 3)
    return tuple(int(np.clip(base + v, 0, 60)) for v in tint)


def _paper(rng, h, w, kind):
    colour = np.array(_fill_colour(rng, 200), np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    if kind == "dots":
        dot = np.clip(colour * 0.93, 0, 255)
        step = int(rng.integers(14, 26)) * SS
        r = max(1, int(rng.integers(2, 4)) * SS)
        for y in range(0, h, step):
            off = step // 2 if (y // step) % 2 else 0
            for x in range(off, w, step):
                cv2.circle(img, (x, y), r, dot.tolist(), -1, cv2.LINE_AA)
    elif kind == "gradient":
        other = np.array(_fill_colour(rng, 190), np.float32)
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = colour * (1 - ramp) + other * ramp
        img = np.broadcast_to(img, (h, w, 3)).copy()
    elif kind == "clouds":
        noise = rng.random((h // (40 * SS) + 2, w // (40 * SS) + 2)).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        img += ((noise - 0.5) * 18)[..., None]
    return np.clip(img, 0, 255)


@dataclass
class Shape:
    kind: str
    fill: tuple
    ink: tuple
    outline: int
    size: float
    params: dict
    path: np.ndarray  # 3 control points of a quadratic Bezier (centre path)
    rot0: float
    rot1: float
    scale1: float
    z: int


def _bezier(p, t):
    return (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t ** 2 * p[2]


def _blob_outline(params, t, size):
    n = 64
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k, (amp, ph, speed) in enumerate(params["harmonics"], start=2):
        r += amp * np.cos(k * a + ph + speed * t)
    squash = 1 + params["squash"] * np.sin(np.pi * t)
    x = np.cos(a) * r * size * params["aspect"] * squash
    y = np.sin(a) * r * size / squash
    return np.stack([x, y], 1)


def _star_outline(params, t, size):
    k = params["points"]
    a = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False)
    r = np.where(np.arange(2 * k) % 2 == 0, size, size * params["inner"])
    return np.stack([np.cos(a) * r, np.sin(a) * r], 1)


def _poly_outline(params, t, size):
    k = params["sides"]
    a = np.linspace(0, 2 * np.pi, k, endpoint=False) + params["jitter"]
    return np.stack([np.cos(a) * size * params["aspect"], np.sin(a) * size], 1)


def _transform(points, centre, angle, scale):
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return points @ rot.T * scale + centre


def _draw_poly(img, pts, fill, ink, outline):
    p = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [p], fill, cv2.LINE_AA, shift=4)
    cv2.polylines(img, [p], True, ink, outline * SS, cv2.LINE_AA, shift=4)


def _draw_shape(img, shape: Shape, t: float):
    centre = _bezier(shape.path, t) * SS
    angle = shape.rot0 + (shape.rot1 - shape.rot0) * t
    scale = 1 + (shape.scale1 - 1) * t
    size = shape.size * SS
    if shape.kind == "stick":
        _draw_stick(img, shape, centre, angle, scale, t)
        return
    if shape.kind == "blob":
        local = _blob_outline(shape.params, t, size)
    elif shape.kind == "star":
        local = _star_outline(shape.params, t, size)
    else:
        local = _poly_outline(shape.params, t, size)
    pts = _transform(local, centre, angle, scale)
    _draw_poly(img, pts, shape.fill, shape.ink, shape.outline)
    if shape.kind == "blob" and shape.params["face"]:
        for side in (-1, 1):
            eye = _transform(np.array([[side * 0.3 * size, -0.25 * size]]), centre, angle, scale)[0]
            r = 0.14 * size * scale
            cv2.ellipse(img, (tuple(np.round(eye * 16).astype(int))), (int(r * 16), int(r * 1.2 * 16)),
                        np.degrees(angle), 0, 360, (255, 255, 255), -1, cv2.LINE_AA, 4)
            cv2.ellipse(img, (tuple(np.round(eye * 16).astype(int))), (int(r * 16), int(r * 1.2 * 16)),
                        np.degrees(angle), 0, 360, shape.ink, max(1, shape.outline * SS // 2), cv2.LINE_AA, 4)
            pupil = eye + np.array([np.cos(angle), np.sin(angle)]) * r * 0.3
            cv2.circle(img, tuple(np.round(pupil * 16).astype(int)), int(r * 0.45 * 16), shape.ink, -1,
                       cv2.LINE_AA, 4)
        mouth = _transform(np.array([[0.0, 0.25 * size]]), centre, angle, scale)[0]
        cv2.ellipse(img, tuple(np.round(mouth * 16).astype(int)), (int(0.25 * size * scale * 16),
                    int(0.12 * size * scale * 16)), np.degrees(angle), 10, 170, shape.ink,
                    max(1, shape.outline * SS // 2), cv2.LINE_AA, 4)


def _draw_stick(img, shape, centre, angle, scale, t):
    p = shape.params
    size = shape.size * SS * scale
    width = max(3, int(p["limb"] * size))
    swing = np.sin(2 * np.pi * (p["freq"] * t + p["phase"])) * p["amp"]
    hip = np.array([0.0, 0.2]) * size
    neck = np.array([0.0, -0.55]) * size
    bones = []
    for side in (-1, 1):
        a1 = np.pi / 2 + side * (0.3 + swing)
        knee = hip + 0.45 * size * np.array([np.cos(a1), np.sin(a1)])
        a2 = a1 + side * 0.4 * (1 + swing)
        foot = knee + 0.45 * size * np.array([np.cos(a2), np.sin(a2)])
        bones += [(hip, knee), (knee, foot)]
        b1 = np.pi / 2 + side * (0.9 - swing)
        elbow = neck + 0.35 * size * np.array([np.cos(b1), np.sin(b1)])
        b2 = b1 - side * 0.6 * (1 - swing)
        hand = elbow + 0.35 * size * np.array([np.cos(b2), np.sin(b2)])
        bones += [(neck, elbow), (elbow, hand)]
    bones.append((hip, neck))
    head = neck + np.array([0.0, -0.22]) * size
    world = [(_transform(a[None], centre, angle, 1)[0], _transform(b[None], centre, angle, 1)[0]) for a, b in bones]
    head_w = _transform(head[None], centre, angle, 1)[0]
    o = shape.outline * SS
    for a, b in world:
        cv2.line(img, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), shape.ink,
                 width + 2 * o, cv2.LINE_AA, 4)
    for a, b in world:
        cv2.line(img, tuple(np.round(a * 16).astype(int)), tuple(np.round(b * 16).astype(int)), shape.fill,
                 width, cv2.LINE_AA, 4)
    r = int(0.2 * size * 16)
    hc = tuple(np.round(head_w * 16).astype(int))
    cv2.circle(img, hc, r, p["head"], -1, cv2.LINE_AA, 4)
    cv2.circle(img, hc, r, shape.ink, o, cv2.LINE_AA, 4)


MOTION_PX = {"still": (0, 2), "small": (5, 18), "medium": (20, 40), "large": (40, 85)}


def _make_shape(rng, w, h, ground_y, motion, z, ink, outline):
    kind = str(rng.choice(["blob", "blob", "star", "poly", "stick"]))
    size = float(rng.uniform(0.07, 0.2) * min(w, h) * (1.6 if kind == "stick" else 1.0))
    centre = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.25, 0.8) * h])
    lo, hi = MOTION_PX[motion]
    dist = rng.uniform(lo, hi) * w / 512
    heading = rng.uniform(0, 2 * np.pi)
    end = centre + dist * np.array([np.cos(heading), np.sin(heading)])
    mid = (centre + end) / 2
    normal = np.array([-np.sin(heading), np.cos(heading)])
    control = mid + normal * rng.uniform(-0.5, 0.5) * dist  # an arc two keys cannot reveal
    rot = np.radians(rng.uniform(-1, 1) * {"still": 1, "small": 8, "medium": 25, "large": 50}[motion])
    params: dict = {}
    if kind == "blob":
        params = {"harmonics": [(rng.uniform(0, 0.12), rng.uniform(0, 6), rng.uniform(-1, 1)) for _ in range(3)],
                  "aspect": rng.uniform(0.6, 1.3), "squash": rng.uniform(-0.15, 0.15), "face": rng.random() < 0.6}
    elif kind == "star":
        params = {"points": int(rng.integers(4, 8)), "inner": rng.uniform(0.4, 0.65)}
    elif kind == "poly":
        params = {"sides": int(rng.integers(3, 8)), "jitter": rng.uniform(0, 1), "aspect": rng.uniform(0.7, 1.3)}
    else:
        params = {"limb": rng.uniform(0.09, 0.16), "freq": rng.uniform(0.2, 0.8), "phase": rng.uniform(0, 1),
                  "amp": rng.uniform(0.1, 0.5) * (0.2 if motion in ("still", "small") else 1.0),
                  "head": _fill_colour(rng)}
    return Shape(kind, _fill_colour(rng), ink, outline, size, params, np.stack([centre, control, end]),
                 rng.uniform(0, 2 * np.pi), 0.0, rng.uniform(0.9, 1.12) if motion != "still" else 1.0, z), rot


def make_clip(seed: int, width: int = 512, height: int = 320, k: int | None = None):
    """(frames list of HxWx3 uint8 RGB, stats dict) of one clip; frames 0 and K are the keys."""
    rng = np.random.default_rng(seed)
    k = k or int(rng.choice([2, 4, 8]))
    motion = str(rng.choice(["small", "mixed", "large", "medium"]))
    pan = float(rng.uniform(-20, 20)) * width / 512 if rng.random() < 0.25 else 0.0
    w, h = width * SS, height * SS
    margin = int(abs(pan) * SS) + 8
    paper = _paper(rng, h, w + 2 * margin, str(rng.choice(["flat", "dots", "gradient", "clouds"])))
    ink = _ink(rng)
    outline = int(rng.choice([2, 3]))
    ground_y = rng.uniform(0.6, 0.85) * height
    ground_colour = _fill_colour(rng)
    xs = np.linspace(0, w + 2 * margin, 80)
    phase, freq, amp = rng.uniform(0, 6), rng.uniform(1, 3), rng.uniform(4, 16) * SS
    ground = np.stack([xs, ground_y * SS + amp * np.sin(xs / (w + 2 * margin) * freq * 2 * np.pi + phase)], 1)
    poly = np.concatenate([ground, [[w + 2 * margin, h + 10], [0, h + 10]]])
    _draw_poly(paper, poly, ground_colour, ink, outline)
    count = int(rng.integers(1, 6))
    shapes = []
    for z in range(count):
        m = motion if motion != "mixed" else str(rng.choice(["still", "small", "medium", "large"]))
        shape, rot = _make_shape(rng, width, height, ground_y, m, z, ink, outline)
        shape.rot1 = shape.rot0 + rot
        shapes.append(shape)
    frames = []
    for i in range(k + 1):
        t = i / k
        shift = int(round(margin + pan * SS * t))
        img = np.ascontiguousarray(paper[:, shift - 0 : shift + w] if shift + w <= paper.shape[1] else paper[:, -w:])
        img = img.copy()
        for shape in sorted(shapes, key=lambda s: s.z):
            _draw_shape(img, shape, t)
        small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(np.clip(small + 0.5, 0, 255).astype(np.uint8))
    stats = {"K": k, "motion": motion, "pan_px": pan, "objects": [s.kind for s in shapes]}
    return frames, stats


def write_set(folder: Path, seeds: list[int], name: str, width: int = 512, height: int = 320) -> None:
    """A set folder in the shared eval's layout (manifest.json + clip folders of frame_%04d.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for seed in seeds:
        frames, stats = make_clip(seed, width, height)
        cid = f"g{seed}"
        (folder / cid).mkdir(exist_ok=True)
        names = []
        for i, frame in enumerate(frames):
            names.append(f"frame_{i:04d}.png")
            cv2.imwrite(str(folder / cid / names[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        clips.append({"id": cid, "seed": seed, "width": width, "height": height, "K": stats["K"],
                      "motion": stats["motion"], "frames": names, "stats": stats})
    (folder / "manifest.json").write_text(json.dumps({"name": name, "clips": clips}, indent=1))
