"""The segment inspector's speed preset and the time estimate shown before a run."""

from __future__ import annotations

from qt_helpers import as_if_probed

from tooncrafter_studio.engines.base import ProbeResult
from tooncrafter_studio.project.commands import SetSegmentSettings


def test_preset_sets_steps_undoably_and_the_estimate_follows(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="tooncrafter"))
    as_if_probed(qtbot, window, tooncrafter=ProbeResult(True, "CUDA, 20.0 GB free of 24.0 GB, high memory mode"))
    inspector = window.inspector
    assert inspector.preset.currentData() == "final"  # the engine's default 50 steps are the final preset
    before = inspector.time_estimate.text()
    assert before.startswith("ToonCrafter on the GPU (CUDA): about ") and "rough" in before

    inspector.preset.setCurrentIndex(inspector.preset.findData("draft"))
    assert window.inspector.settings().params["steps"] == 15
    assert inspector.steps.value() == 15 and inspector.preset.currentData() == "draft"
    draft = inspector.time_estimate.text()
    assert draft != before

    inspector.steps.setValue(30)  # steps of neither preset
    assert inspector.preset.currentData() == "custom"
    inspector.steps.setValue(50)  # typing the final preset's steps selects it
    assert inspector.preset.currentData() == "final"
    window.session.undo()  # the steps edits merge into one undo step: back to 50 (or 15), preset in step
    assert inspector.steps.value() in (15, 50)
    assert inspector.preset.currentData() == {15: "draft", 50: "final"}[inspector.steps.value()]

    params = dict(inspector.settings().params, device="cpu")
    window.session.push(SetSegmentSettings(span.key, params=params))
    assert "CPU" in inspector.time_estimate.text()
