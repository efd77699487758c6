"""A small shot built in memory: three source drawings and a take with every review status."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tooncrafter_studio.media import import_source
from tooncrafter_studio.media.imageio import write_png
from tooncrafter_studio.project.document import (
    Cell,
    Drawing,
    ReviewStatus,
    Segment,
    Shot,
    Take,
    TakeFrame,
)


def picture(value: int, h=6, w=10, channels=3, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(value)
    top = 255 if dtype == np.uint8 else 65535
    a = rng.integers(0, top + 1, (h, w, channels), dtype=dtype)
    return a


def build_shot(project: Path, channels=3, dtype=np.uint8,
               statuses=(ReviewStatus.ACCEPTED, ReviewStatus.REJECTED, ReviewStatus.PENDING)) -> Shot:
    """Timeline: A key (frames 1-4, take frames at offsets 1..3 over it), B key (5-6), C drawing (7).

    Source frames hold pictures 0, 1, 2; take frames hold pictures 100, 101, 102.
    """
    media = project / "media"
    media.mkdir(parents=True)
    for i in range(3):
        write_png(media / f"src.{i + 1:04d}.png", picture(i, channels=channels, dtype=dtype))
    source = import_source(media).source
    shot = Shot(name="walk", fps=24.0, width=source.width, height=source.height,
                has_alpha=source.has_alpha, bit_depth=source.bit_depth)
    shot.sources[source.id] = source
    for i, key in enumerate((True, True, False)):
        shot.drawings[f"d{i}"] = Drawing(f"d{i}", source.id, i, is_key=key)
    shot.cells = [Cell("d0", 4), Cell("d1", 2), Cell("d2", 1)]
    take_dir = project / "takes" / "t1"
    take_dir.mkdir(parents=True)
    frames = []
    for i, status in enumerate(statuses):
        write_png(take_dir / f"{i + 1:04d}.png", picture(100 + i, channels=3, dtype=np.uint8))
        frames.append(TakeFrame(f"takes/t1/{i + 1:04d}.png", offset=i + 1, time=(i + 1) / 4, status=status))
    shot.takes["t1"] = Take("t1", "d0", "d1", frames, {"engine": "flow", "model": "farneback"},
                            {"times": [0.25, 0.5, 0.75], "spacing": "linear"}, 1234, "2026-01-01T00:00:00Z",
                            label="take1")
    shot.segments[("d0", "d1")] = Segment("d0", "d1", take_ids=["t1"], active_take="t1")
    return shot
