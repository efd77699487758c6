"""Held-out cartoon clips with motions the training generator (cartoon.py) never makes.

cartoon.py moves characters by at most ~85 px on gentle curves (the arc's bend at most half the
distance), squashes by +-15% and turns by at most 50 degrees. This generator makes the motions an
animator's keys really have, each clip one kind:

- "arc": a hop on a high arc (the bend 0.6-1.2x the distance), 60-160 px;
- "squash": squash and stretch of 0.55-1.7x along the motion, with the volume kept;
- "overlap": two characters crossing, one passing behind the other;
- "jump": a large jump of 150-300 px (a third of the frame or more);
- "spin": a turn of 90-200 degrees while moving.

Flat fills and dark ink (ink luminance <= 60, fills >= 125, as the shared scorer assumes) on flat
paper with a ground band, drawn at 2x and reduced. Seeded: a seed range is a fixed set. Written
here from the list above; the shapes are ellipses with faces, rounded boxes and stars.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

SS = 2
KINDS = ("arc", "squash", "overlap", "jump", "spin")


def _colour(rng, low=135.0):
    while True:
        c = rng.integers(70, 250, 3)
        if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] >= low:
            return tuple(int(v) for v in c)


def _outline(kind, size, aspect, t_angle):
    """Closed outline (N x 2, around 0) of a character."""
    n = 96
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if kind == "star":
        r = np.where(np.arange(n) % 16 < 8, 1.0, 0.55)
        r = cv2.GaussianBlur(r.astype(np.float32)[None], (1, 9), 0)[0]
        pts = np.stack([np.cos(a) * r, np.sin(a) * r], 1)
    elif kind == "box":
        pts = np.stack([np.sign(np.cos(a)) * np.abs(np.cos(a)) ** 0.35, np.sign(np.sin(a)) * np.abs(np.sin(a)) ** 0.35], 1)
    else:
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    pts = pts * size * np.array([aspect, 1.0 / aspect])
    c, s = math.cos(t_angle), math.sin(t_angle)
    return pts @ np.array([[c, s], [-s, c]])


def _draw_character(img, ch, centre, angle, stretch, ink):
    """A character at `centre` turned by `angle`, stretched by `stretch` along its own x."""
    outline = _outline(ch["kind"], ch["size"], ch["aspect"] * stretch, angle) + centre
    pts = np.round(outline * SS).astype(np.int32)
    cv2.fillPoly(img, [pts], ch["fill"], cv2.LINE_8)
    cv2.polylines(img, [pts], True, ink, 3 * SS, cv2.LINE_8)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    scale = np.array([ch["aspect"] * stretch, 1.0 / (ch["aspect"] * stretch)])
    # a belly patch (a second region) and a face: eyes and a mouth, turning with the body
    patch = (np.array([0.0, 0.35]) * ch["size"] * scale) @ rot + centre
    axes = (int(ch["size"] * 0.35 * scale[0] * SS), int(ch["size"] * 0.25 * scale[1] * SS))
    cv2.ellipse(img, tuple(np.round(patch * SS).astype(int)), axes, math.degrees(angle), 0, 360, ch["patch"], -1)
    cv2.ellipse(img, tuple(np.round(patch * SS).astype(int)), axes, math.degrees(angle), 0, 360, ink, 2 * SS)
    for side in (-1, 1):
        eye = (np.array([0.3 * side, -0.3]) * ch["size"] * scale) @ rot + centre
        e = tuple(np.round(eye * SS).astype(int))
        cv2.circle(img, e, int(ch["size"] * 0.14 * SS), (255, 255, 255), -1)
        cv2.circle(img, e, int(ch["size"] * 0.14 * SS), ink, 2 * SS)
        cv2.circle(img, e, int(ch["size"] * 0.05 * SS) + 1, ink, -1)


def _path(rng, w, h, kind):
    """(start, control, end, turn radians, squash curve) of one character."""
    size_room = 0.18 * min(w, h)
    if kind == "jump":
        dist = rng.uniform(150, 300) * w / 512
    elif kind == "arc":
        dist = rng.uniform(60, 160) * w / 512
    else:
        dist = rng.uniform(40, 120) * w / 512
    for _ in range(100):
        start = rng.uniform((size_room, size_room), (w - size_room, h - size_room))
        heading = rng.uniform(0, 2 * np.pi)
        end = start + dist * np.array([math.cos(heading), math.sin(heading)])
        if size_room <= end[0] <= w - size_room and size_room <= end[1] <= h - size_room:
            break
    normal = np.array([-(end - start)[1], (end - start)[0]]) / max(np.linalg.norm(end - start), 1e-6)
    bend = rng.uniform(0.6, 1.2) if kind == "arc" else rng.uniform(-0.2, 0.2)
    control = (start + end) / 2 + normal * bend * dist * (1 if rng.random() < 0.5 else -1)
    control = np.clip(control, (size_room, size_room * 0.6), (w - size_room, h - size_room))
    turn = math.radians(rng.uniform(90, 200) * (1 if rng.random() < 0.5 else -1)) if kind == "spin" else \
        math.radians(rng.uniform(-20, 20))
    return start, control, end, turn


def make_clip(seed: int, width: int = 512, height: int = 320, k: int = 4):
    """(frames, stats): frames 0..k of one held-out clip (HxWx3 uint8 RGB)."""
    rng = np.random.default_rng(10_000 + seed)
    kind = KINDS[seed % len(KINDS)]
    w, h = width * SS, height * SS
    paper = np.zeros((h, w, 3), np.uint8)
    paper[:] = _colour(rng, 200)
    ink = tuple(int(v) for v in rng.integers(15, 45, 3))
    ground = int(rng.uniform(0.72, 0.88) * h)
    xs = np.linspace(0, w, 60)
    wave = ground + rng.uniform(4, 14) * SS * np.sin(xs / w * rng.uniform(1, 3) * 2 * np.pi + rng.uniform(0, 6))
    poly = np.concatenate([np.stack([xs, wave], 1), [[w, h + 5], [0, h + 5]]]).astype(np.int32)
    cv2.fillPoly(paper, [poly], _colour(rng))
    cv2.polylines(paper, [poly[:60]], False, ink, 3 * SS)
    count = 2 if kind == "overlap" else int(rng.integers(1, 3))
    characters = []
    for i in range(count):
        ch = {"kind": str(rng.choice(["blob", "box", "star"])), "size": rng.uniform(0.09, 0.15) * min(width, height),
              "aspect": rng.uniform(0.8, 1.25), "fill": _colour(rng), "patch": _colour(rng), "angle": rng.uniform(0, 6.3)}
        ch["path"] = _path(rng, width, height, kind if i == 0 or kind != "overlap" else "jump")
        if kind == "overlap" and i == 1:  # the second one crosses the first's path, behind it
            first = characters[0]["path"]
            mid = (first[0] + first[2]) / 2
            offset = rng.uniform(-1, 1, 2) * 20
            start = mid + np.array([-1, 1]) * (first[2] - first[0])[::-1] * 0.6 + offset
            end = mid - np.array([-1, 1]) * (first[2] - first[0])[::-1] * 0.6 + offset
            ch["path"] = (start, mid + offset, end, math.radians(rng.uniform(-30, 30)))
        ch["squash"] = rng.uniform(0.55, 0.8) if kind == "squash" else 1.0
        ch["z"] = -i if kind == "overlap" else i
        characters.append(ch)
    frames = []
    for i in range(k + 1):
        t = i / k
        img = paper.copy()
        for ch in sorted(characters, key=lambda c: c["z"]):
            start, control, end, turn = ch["path"]
            centre = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t ** 2 * end
            # squash at the keys, stretch in the middle (1/squash), volume kept by _outline
            stretch = ch["squash"] + (1 / ch["squash"] - ch["squash"]) * math.sin(math.pi * t)
            _draw_character(img, ch, centre, ch["angle"] + turn * t, stretch, ink)
        frames.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    return frames, {"kind": kind, "K": k, "characters": count}


def write_set(folder: Path, seeds, width: int = 512, height: int = 320, k: int = 4) -> Path:
    """A set folder in the shared eval's layout (manifest.json + clip folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for seed in seeds:
        frames, stats = make_clip(seed, width, height, k)
        cid = f"h{seed}"
        (folder / cid).mkdir(exist_ok=True)
        names = []
        for i, frame in enumerate(frames):
            names.append(f"frame_{i:04d}.png")
            cv2.imwrite(str(folder / cid / names[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        clips.append({"id": cid, "seed": seed, "width": width, "height": height, **stats, "frames": names})
    (folder / "manifest.json").write_text(json.dumps({"name": "held-out motions", "clips": clips}, indent=1))
    return folder
