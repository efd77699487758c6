"""The segment's path arc: an undoable command, saved with the project, checked when read, set
from the CLI, and handed to the flow engine (and only to it) by the pipeline."""

from __future__ import annotations

import copy
import json

import pytest
from project_factories import make_shot

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import InputError, ProjectError
from tooncrafter_studio.project.commands import CommandStack, SetSegmentArc, segment_settings
from tooncrafter_studio.project.project import PROJECT_FILE, Project

KEY = ("d0001", "d0009")


def test_arc_is_one_undo_step_per_drag_and_straight_again_after_undo(shot):
    stack = CommandStack(shot)
    before = copy.deepcopy(shot)
    for y in (-0.05, -0.1, -0.2):  # one drag of the handle
        stack.push(SetSegmentArc(KEY, (0.02, y), merge_id="arc-drag"))
    assert segment_settings(shot, KEY).arc == (0.02, -0.2)
    assert len(stack) == 1
    stack.undo()
    assert shot == before and segment_settings(shot, KEY).arc is None
    stack.redo()
    assert segment_settings(shot, KEY).arc == (0.02, -0.2)
    stack.push(SetSegmentArc(KEY, None))
    assert segment_settings(shot, KEY).arc is None
    stack.undo()
    assert segment_settings(shot, KEY).arc == (0.02, -0.2)


@pytest.mark.parametrize("bad", [(0.0, 1.5), (float("nan"), 0.0), (float("inf"), 0.0)])
def test_an_arc_off_the_frame_is_refused_and_changes_nothing(shot, bad):
    before = copy.deepcopy(shot)
    with pytest.raises(InputError, match="arc"):
        CommandStack(shot).push(SetSegmentArc(KEY, bad))
    assert shot == before


def test_the_arc_is_saved_and_read_back(tmp_path):
    project = Project.create(tmp_path / "shot", make_shot([1] * 9, keys=(0, 8)))
    project.push(SetSegmentArc(KEY, (0.0, -0.25)))
    project.save()
    data = json.loads((tmp_path / "shot" / PROJECT_FILE).read_text())
    [segment] = data["shot"]["segments"]
    assert segment["settings"]["arc"] == [0.0, -0.25]
    assert Project.open(tmp_path / "shot").shot.segments[KEY].settings.arc == (0.0, -0.25)
    project.push(SetSegmentArc(KEY, None))
    project.save()
    data = json.loads((tmp_path / "shot" / PROJECT_FILE).read_text())
    assert "arc" not in data["shot"]["segments"][0]["settings"]  # straight paths write nothing


@pytest.mark.parametrize("value", [[0.0], "up", [True, 0.0], [0.0, 7.0], {"x": 0}])
def test_a_damaged_arc_in_the_file_is_a_clear_error(tmp_path, value):
    project = Project.create(tmp_path / "shot", make_shot([1] * 9, keys=(0, 8)))
    project.push(SetSegmentArc(KEY, (0.0, -0.25)))
    project.save()
    path = tmp_path / "shot" / PROJECT_FILE
    data = json.loads(path.read_text())
    data["shot"]["segments"][0]["settings"]["arc"] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="arc"):
        Project.open(tmp_path / "shot")


def test_the_pipeline_hands_the_arc_to_the_flow_engine_only(tmp_path):
    from tooncrafter_studio.pipeline.jobs import segment_job

    project = Project.create(tmp_path / "shot", make_shot([1] * 9, keys=(0, 8)))
    project.push(SetSegmentArc(KEY, (0.1, -0.2)))
    flow = segment_job(project, KEY)
    assert flow.params["arc"] == [0.1, -0.2]
    flow.release()
    other = segment_job(project, KEY, engine="tooncrafter")
    assert "arc" not in other.params
    other.release()


def test_cli_sets_and_clears_the_arc_and_info_shows_it(tmp_path, capsys):
    folder = tmp_path / "shot"
    Project.create(folder, make_shot([1] * 9, keys=(0, 8))).save()
    assert run_cli(["arc", str(folder), "--segment", "1", "--offset", "0,-0.2"]) == 0
    assert "arc +0,-0.2" in capsys.readouterr().out
    assert Project.open(folder).shot.segments[KEY].settings.arc == (0.0, -0.2)
    assert run_cli(["info", str(folder)]) == 0
    assert "arc +0,-0.2" in capsys.readouterr().out
    assert run_cli(["arc", str(folder), "--segment", "1", "--straight"]) == 0
    assert Project.open(folder).shot.segments[KEY].settings.arc is None
    capsys.readouterr()
    assert run_cli(["arc", str(folder), "--segment", "4", "--offset", "0,0.1"]) != 0
    assert "No segment starts at frame 4" in capsys.readouterr().err
    assert run_cli(["arc", str(folder), "--segment", "1", "--offset", "0,3"]) != 0
    assert "from -1 to 1" in capsys.readouterr().err
    assert Project.open(folder).shot.segments[KEY].settings.arc is None

