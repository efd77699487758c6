"""The takes panel names the engine's confidence in a take and its warning."""

from __future__ import annotations

from tooncrafter_studio.project.document import Shot, Take, TakeFrame
from tooncrafter_studio.qt.panels.takes import take_summary


def _shot_with_take(info: dict) -> Shot:
    frames = [TakeFrame(f"takes/tk1/{i:04d}.png", 2 * i, i / 4) for i in (1, 2, 3)]
    take = Take("tk1", "d0001", "d0009", frames, {"engine": "flow"}, {"engine_info": info}, 0,
                "2026-01-01T00:00:00+00:00")
    shot = Shot()
    shot.takes[take.id] = take
    return shot


def test_the_takes_panel_shows_the_engines_confidence_and_warning():
    shot = _shot_with_take({"confidence": [0.9, 0.42, 0.9], "message": "motion too large for the flow engine"})
    text = take_summary(shot, "tk1")
    assert "confidence 0.42" in text and "⚠ motion too large" in text
    assert "confidence" not in take_summary(_shot_with_take({}), "tk1")
    assert "confidence" not in take_summary(_shot_with_take({"confidence": ["x"]}), "tk1")
