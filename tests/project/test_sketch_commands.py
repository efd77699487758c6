"""Sketches on in-between cells: undoable place / move / remove / strength, saved and reopened,
copied into the project by content; a generation hands them to the engine at their cells' times
and the take's provenance lists them."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_factories import BlendEngine, make_project  # noqa: E402

from tooncrafter_studio.core.errors import InputError, ProjectError  # noqa: E402
from tooncrafter_studio.media.sketch_files import import_sketch_image as import_sketch_file  # noqa: E402
from tooncrafter_studio.pipeline.jobs import segment_job  # noqa: E402
from tooncrafter_studio.pipeline.runner import run_job  # noqa: E402
from tooncrafter_studio.project.commands import SetSegmentSettings, segment_settings  # noqa: E402
from tooncrafter_studio.project.project import Project  # noqa: E402
from tooncrafter_studio.project.sketches import (  # noqa: E402
    MoveSketch,
    PlaceSketch,
    RemoveSketch,
    SetSketchScale,
)

KEY = ("d0001", "d0009")


def _sketch_file(folder: Path, name="pose.png", x=20) -> Path:
    img = np.full((48, 64, 3), 255, np.uint8)
    cv2.line(img, (x, 5), (x, 40), (0, 0, 0), 2)
    path = folder / name
    assert cv2.imwrite(str(path), img)
    return path


def test_place_move_remove_and_strength_are_undoable_and_saved(tmp_path):
    project = make_project(tmp_path)
    ref = import_sketch_file(project.folder, _sketch_file(tmp_path))
    assert ref.file.startswith("sketches/") and (project.folder / ref.file).is_file() and ref.name == "pose.png"
    assert import_sketch_file(project.folder, _sketch_file(tmp_path)) == ref  # by content: one copy
    project.push(PlaceSketch(KEY, 4, ref))
    project.push(MoveSketch(KEY, 4, 6))
    project.push(SetSketchScale(KEY, 0.9))
    settings = segment_settings(project.shot, KEY)
    assert list(settings.sketches) == [6] and settings.sketch_scale == 0.9
    project.save()
    reopened = Project.open(project.folder)
    again = segment_settings(reopened.shot, KEY)
    assert again.sketches == settings.sketches and again.sketch_scale == 0.9
    project.undo()
    project.undo()
    assert list(segment_settings(project.shot, KEY).sketches) == [4]
    project.push(RemoveSketch(KEY, 4))
    assert segment_settings(project.shot, KEY).sketches == {}
    project.undo()
    assert list(segment_settings(project.shot, KEY).sketches) == [4]


def test_bad_sketch_edits_change_nothing(tmp_path):
    project = make_project(tmp_path)
    ref = import_sketch_file(project.folder, _sketch_file(tmp_path))
    project.push(PlaceSketch(KEY, 2, ref))
    project.push(PlaceSketch(KEY, 3, ref))
    with pytest.raises(InputError, match="already has a sketch"):
        project.push(MoveSketch(KEY, 2, 3))
    with pytest.raises(InputError, match="no sketch"):
        project.push(RemoveSketch(KEY, 5))
    with pytest.raises(InputError, match="between 0 and 1.5"):
        project.push(SetSketchScale(KEY, 3))
    with pytest.raises(ProjectError, match="does not exist"):
        import_sketch_file(project.folder, tmp_path / "missing.png")
    assert sorted(segment_settings(project.shot, KEY).sketches) == [2, 3]


class SketchEngine(BlendEngine):
    id = "test-sketch"
    accepts_sketches = True


def test_generation_hands_sketches_to_the_engine_and_the_take_records_them(tmp_path):
    project = make_project(tmp_path)
    project.push(SetSegmentSettings(KEY, exposure=2))  # in-betweens at offsets 2, 4, 6
    ref = import_sketch_file(project.folder, _sketch_file(tmp_path))
    project.push(PlaceSketch(KEY, 4, ref))
    project.push(SetSketchScale(KEY, 1.2))
    engine = SketchEngine()
    result = run_job(segment_job(project, KEY, seed=3), engine, project=project)
    params = engine.requests[0].params
    assert [(s.time, s.name, s.sha256) for s in params["sketches"]] == [(0.5, "pose.png", ref.sha256)]
    assert params["sketches"][0].image.shape == (48, 64, 3) and params["sketch_scale"] == 1.2
    take = project.shot.takes[result.take.id]
    assert take.params["sketches"] == [{"offset": 4, "time": 0.5, "file": ref.file, "sha256": ref.sha256,
                                        "name": "pose.png"}]
    assert take.params["sketch_scale"] == 1.2 and take.params["sketches_used"] is True


def test_engines_without_sketch_support_get_none_and_the_take_says_so(tmp_path):
    project = make_project(tmp_path)
    project.push(PlaceSketch(KEY, 3, import_sketch_file(project.folder, _sketch_file(tmp_path))))
    engine = BlendEngine()
    result = run_job(segment_job(project, KEY, seed=3), engine, project=project)
    assert "sketches" not in engine.requests[0].params
    assert project.shot.takes[result.take.id].params["sketches_used"] is False


def test_sketches_command_places_removes_and_sets_strength_then_generate_uses_them(tmp_path, capsys):
    from tooncrafter_studio.cli.main import run_cli

    project = make_project(tmp_path)
    path = _sketch_file(tmp_path)
    folder = str(project.folder)
    assert run_cli(["sketches", folder, "--add", f"5={path}", "--add", f"7={path}", "--pair", "1:9",
                    "--scale", "0.7"]) == 0
    assert "sketches at 5 (pose.png), 7 (pose.png); strength 0.7" in capsys.readouterr().out
    assert run_cli(["sketches", folder, "--remove", "7"]) == 0
    reopened = Project.open(project.folder)
    settings = segment_settings(reopened.shot, KEY)
    assert list(settings.sketches) == [4] and settings.sketch_scale == 0.7
    assert run_cli(["sketches", folder, "--add", f"1={path}"]) == 2
    assert "not between two keys" in capsys.readouterr().err
