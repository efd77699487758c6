"""Draw the project's sample shot and make a ready-to-open project of it.

    python tools/make_sample_shot.py [--out tooncrafter_studio/resources/sample_shot] [--frames-only]

A cartoon ball (flat colours, dark outlines, a face) hops across a simple landscape on an arc with
squash and stretch, animated on 2s: 24 timeline frames, 12 drawings, each written twice, 512x320.
Everything is drawn here from shapes; nothing is copied from anywhere. The output is deterministic,
so re-running it gives the same frames.

The project folder gets a `project.json` made with the project API (import with hold detection,
so the 24 files become 12 drawings on 2s) and keys at frames 1, 9 and 17: take-off, the top of the
arc and the landing, with three drawings to in-between in each gap.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tooncrafter_studio.media.imageio import write_png  # noqa: E402

WIDTH, HEIGHT = 512, 320
TIMELINE_FRAMES = 24
EXPOSURE = 2  # on 2s
KEY_FRAMES = (1, 9, 17)
GROUND_Y = 262
RADIUS = 30
SS = 4  # supersampling: shapes are drawn 4x larger and area-filtered down, for clean edges

INK = (38, 30, 46)
SKY = (150, 206, 240)
HILL_FAR = (121, 189, 143)
GROUND = (96, 168, 88)
SUN = (255, 214, 92)
CLOUD = (250, 250, 246)
BALL = (232, 72, 64)
BALL_SHADE = (186, 48, 52)
STRIPE = (255, 236, 120)
SHADOW = (70, 124, 66)
WHITE = (255, 255, 255)


def _pt(x: float, y: float) -> tuple[int, int]:
    return (round(x * SS), round(y * SS))


def _ellipse(canvas, centre, axes, angle, colour, outline=True, thickness=3):
    c, a = _pt(*centre), (max(1, round(axes[0] * SS)), max(1, round(axes[1] * SS)))
    cv2.ellipse(canvas, c, a, angle, 0, 360, colour, -1, cv2.LINE_8)
    if outline:
        cv2.ellipse(canvas, c, a, angle, 0, 360, INK, thickness * SS, cv2.LINE_8)


def _background() -> np.ndarray:
    canvas = np.empty((HEIGHT * SS, WIDTH * SS, 3), np.uint8)
    canvas[:] = SKY
    _ellipse(canvas, (430, 62), (30, 30), 0, SUN)
    for cx, cy, s in ((110, 70, 1.0), (300, 48, 0.8)):
        for dx, dy, r in ((-22, 6, 16), (0, 0, 22), (24, 6, 15)):
            _ellipse(canvas, (cx + dx * s, cy + dy * s), (r * s, r * s), 0, CLOUD, outline=False)
    hill = np.array([_pt(x, GROUND_Y - 40 * math.sin(math.pi * x / WIDTH) ** 2 - 14) for x in range(0, WIDTH + 1, 4)]
                    + [_pt(WIDTH, HEIGHT), _pt(0, HEIGHT)], np.int32)
    cv2.fillPoly(canvas, [hill], HILL_FAR, cv2.LINE_8)
    cv2.polylines(canvas, [hill[:-2]], False, INK, 2 * SS, cv2.LINE_8)
    cv2.rectangle(canvas, _pt(0, GROUND_Y), _pt(WIDTH, HEIGHT), GROUND, -1)
    cv2.line(canvas, _pt(0, GROUND_Y), _pt(WIDTH, GROUND_Y), INK, 3 * SS, cv2.LINE_8)
    return canvas


def ball_pose(frame: int) -> dict:
    """Position, squash and spin of the ball on timeline frame 1..24."""
    if frame <= 17:  # the big hop: take-off at 1, top at 9, landing at 17
        t = (frame - 1) / 16
        height = 150 * 4 * t * (1 - t)
        x = 80 + 260 * t
        contact = frame in (1, 17)
    else:  # a small rebound hop after landing
        t = (frame - 17) / 8
        height = 36 * 4 * t * (1 - t)
        x = 340 + 90 * t
        contact = frame == 25
    speed = abs(1 - 2 * t)  # fastest near the ground: stretch along the motion
    if contact:
        sx, sy = 1.28, 0.72
    else:
        sx, sy = 1 - 0.12 * speed, 1 + 0.14 * speed
    return {"x": x, "y": GROUND_Y - height - RADIUS * sy, "sx": sx, "sy": sy, "spin": frame * 16.0,
            "height": height}


def draw_frame(background: np.ndarray, frame: int) -> np.ndarray:
    canvas = background.copy()
    pose = ball_pose(frame)
    x, y, sx, sy = pose["x"], pose["y"], pose["sx"], pose["sy"]
    shadow_scale = max(0.35, 1 - pose["height"] / 180)
    _ellipse(canvas, (x, GROUND_Y + 4), (RADIUS * 1.1 * shadow_scale, 5 * shadow_scale), 0, SHADOW, outline=False)
    rx, ry = RADIUS * sx, RADIUS * sy
    _ellipse(canvas, (x, y), (rx, ry), 0, BALL)
    _ellipse(canvas, (x + rx * 0.22, y + ry * 0.3), (rx * 0.55, ry * 0.42), 0, BALL_SHADE, outline=False)
    # A stripe that turns as the ball rolls, then the outline again over it.
    angle = math.radians(pose["spin"])
    dx, dy = math.cos(angle) * rx * 0.92, math.sin(angle) * ry * 0.92
    cv2.line(canvas, _pt(x - dx, y - dy), _pt(x + dx, y + dy), STRIPE, 6 * SS, cv2.LINE_8)
    cv2.ellipse(canvas, _pt(x, y), (round(rx * SS), round(ry * SS)), 0, 0, 360, INK, 3 * SS, cv2.LINE_8)
    # The face looks where it is going.
    for ex in (-0.28, 0.22):
        _ellipse(canvas, (x + rx * (ex + 0.2), y - ry * 0.25), (rx * 0.16, ry * 0.22), 0, WHITE, thickness=2)
        _ellipse(canvas, (x + rx * (ex + 0.25), y - ry * 0.23), (rx * 0.07, ry * 0.1), 0, INK, outline=False)
    cv2.ellipse(canvas, _pt(x + rx * 0.18, y + ry * 0.15), (round(rx * 0.3 * SS), round(ry * 0.2 * SS)), 0, 20, 160,
                INK, 2 * SS, cv2.LINE_8)
    return cv2.resize(canvas, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def write_frames(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("ball.*.png"):
        old.unlink()
    background = _background()
    paths = []
    drawing = None
    for frame in range(1, TIMELINE_FRAMES + 1):
        if (frame - 1) % EXPOSURE == 0:
            drawing = draw_frame(background, frame)
        path = folder / f"ball.{frame:04d}.png"
        write_png(path, drawing, compression=9)
        paths.append(path)
    return paths


def make_project(folder: Path) -> None:
    from tooncrafter_studio.media import import_source
    from tooncrafter_studio.project.commands import SetKeys
    from tooncrafter_studio.project.project import PROJECT_FILE, new_project

    result = import_source(folder / "frames", detect_holds=True, tolerance=0)
    result.source.id = "src-sample"
    (folder / PROJECT_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / "takes", ignore_errors=True)
    project = new_project(folder, result.source, result.groups, fps=24.0, name="bouncing-ball")
    project.push(SetKeys.at_frames(project.shot, KEY_FRAMES, True))
    project.save()
    drawings = len(project.shot.cells)
    print(f"project: {folder / PROJECT_FILE} ({drawings} drawings on 2s, keys at frames "
          f"{', '.join(map(str, KEY_FRAMES))})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tooncrafter_studio" / "resources" / "sample_shot")
    parser.add_argument("--frames-only", action="store_true", help="draw the frames, make no project")
    args = parser.parse_args(argv)
    paths = write_frames(args.out / "frames")
    total = sum(p.stat().st_size for p in paths)
    print(f"frames: {len(paths)} files in {args.out / 'frames'} ({total / 1024:.0f} KiB)")
    if not args.frames_only:
        make_project(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
