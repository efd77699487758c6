"""Draw the app icon (ours, from shapes): two key drawings of a ball with in-betweens on an arc.

    python tools/make_icons.py [--out tooncrafter_studio/resources/icons]

Writes icon-<size>.png (16..1024), tooncrafter-studio.ico (Windows) and tooncrafter-studio.icns (macOS).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
BACKGROUND = (32, 36, 48, 255)
KEY = (255, 176, 59, 255)
INBETWEEN = (255, 176, 59)


def draw(size: int) -> Image.Image:
    scale = 4  # draw large, shrink: smooth edges without an anti-aliasing library
    s = size * scale
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=BACKGROUND)
    # an arc of positions: keys at the ends, fading in-betweens between (spacing eases in and out)
    points = [(0.22, 0.72), (0.32, 0.46), (0.5, 0.34), (0.68, 0.46), (0.78, 0.72)]
    for i, (x, y) in enumerate(points):
        key = i in (0, len(points) - 1)
        r = s * (0.12 if key else 0.08)
        cx, cy = x * s, y * s
        colour = KEY if key else (*INBETWEEN, 110 + 40 * (i % 2))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        if key:  # the key marker of the exposure sheet
            d.regular_polygon((cx, cy, r * 0.45), 4, rotation=45, fill=BACKGROUND)
    d.line((0.16 * s, 0.86 * s, 0.84 * s, 0.86 * s), fill=(255, 255, 255, 90), width=max(1, s // 64))
    return image.resize((size, size), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tooncrafter_studio" / "resources" / "icons")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    images = {size: draw(size) for size in SIZES}
    for size, image in images.items():
        if size in (16, 32, 48, 64, 128, 256, 512):
            image.save(out / f"icon-{size}.png", optimize=True)
    images[256].save(out / "tooncrafter-studio.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    images[1024].save(out / "tooncrafter-studio.icns")
    print(f"icons written to {out}")


if __name__ == "__main__":
    main()
