"""Render the sketch-guidance workflow figure for the README into docs/ (offscreen, no GPU).

    python tools/sketch_figure.py [--out docs]

Top row: the two keys of the sample shot and the animator's sketch for the middle in-between
(here made with `lineart` from the real middle drawing, standing in for a rough pencil pose).
Bottom row: what the engine gives the sketch encoder for that pass: the sketch's ink in the model
frame on the generated frame it lands on, and the blank pages of the frames without a sketch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tooncrafter_studio.engines.sketch import Sketch  # noqa: E402
from tooncrafter_studio.engines.tooncrafter.fit import plan_fit  # noqa: E402
from tooncrafter_studio.engines.tooncrafter.sketches import pass_hints  # noqa: E402
from tooncrafter_studio.media import read_image  # noqa: E402
from tooncrafter_studio.media.lineart import line_art  # noqa: E402

FRAMES = ROOT / "resources" / "sample_shot" / "frames"


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = cv2.copyMakeBorder(img, 28, 6, 6, 6, cv2.BORDER_CONSTANT, value=(248, 248, 248))
    cv2.putText(out, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (30, 30, 30), 1, cv2.LINE_AA)
    return out


def render(out_dir: Path) -> Path:
    files = sorted(FRAMES.glob("*.png"))
    key_a, key_b = read_image(files[0])[..., :3], read_image(files[16])[..., :3]
    middle = read_image(files[8])[..., :3]
    sketch_img = line_art(middle)
    sketch = Sketch(0.5, sketch_img, "pose.png")
    plan = plan_fit(key_a.shape[1], key_a.shape[0], "letterbox")
    hints, found = pass_hints([sketch], 0.0, 1.0, plan)
    frame = found[0].frame
    top = np.concatenate([_label(key_a, "start key (frame 1)"), _label(sketch_img, "sketch at t=0.5 (--sketch 0.5=pose.png)"),
                          _label(key_b, "end key (frame 17)")], axis=1)
    thumbs = []
    for k in range(16):
        ink = hints[k, 0]
        tile = np.repeat((255 * ink).astype(np.uint8)[:, :, None], 3, axis=2)
        tile = cv2.resize(tile, (128, 80), interpolation=cv2.INTER_AREA)
        colour = (220, 80, 60) if k == frame else (120, 120, 120)
        tile = cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=colour)
        cv2.putText(tile, str(k), (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
        thumbs.append(tile)
    strip = np.concatenate([np.concatenate(thumbs[:8], axis=1), np.concatenate(thumbs[8:], axis=1)], axis=0)
    strip = _label(strip, f"encoder hints of the pass (ink white): the sketch lands on generated frame {frame} "
                          f"(t={found[0].frame_time:.3f}); the others are blank pages")
    width = max(top.shape[1], strip.shape[1])
    pad = lambda img: cv2.copyMakeBorder(img, 0, 0, 0, width - img.shape[1], cv2.BORDER_CONSTANT,  # noqa: E731
                                         value=(248, 248, 248))
    figure = np.concatenate([pad(top), pad(strip)], axis=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sketch-workflow.png"
    cv2.imwrite(str(path), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    print(render(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
