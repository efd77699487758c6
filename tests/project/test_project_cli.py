"""`new`, `info`, `keys`: exit codes, messages, --json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import write_png
from tooncrafter_studio.project.commands import AddTake, SetExposure, SetFrameStatus
from tooncrafter_studio.project.project import Project, recovery_path


def _sequence(folder, pattern=(0, 0, 1, 2, 2, 2, 3, 4, 5)):
    """Frames on mixed exposures: equal numbers in `pattern` are identical pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, picture in enumerate(pattern):
        image = np.full((16, 20, 3), 240, np.uint8)
        image[4:10, 2 * picture: 2 * picture + 4] = (10, 10, 10)
        write_png(folder / f"bounce.{i + 1:04d}.png", image)
    return folder


def _run(capsys, *argv):
    try:
        code = run_cli([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_new_one_drawing_per_frame(tmp_path, capsys):
    code, out, err = _run(capsys, "new", tmp_path / "p", "--source", _sequence(tmp_path / "in"), "--fps", "12",
                          "--quiet")
    assert code == 0, err
    assert "9 frames, 9 drawings, 20x16 at 12 fps" in out
    shot = Project.open(tmp_path / "p").shot
    assert shot.fps == 12 and [c.length for c in shot.cells] == [1] * 9


def test_new_with_hold_detection(tmp_path, capsys):
    code, out, _ = _run(capsys, "new", tmp_path / "p", "--source", _sequence(tmp_path / "in"), "--detect-holds",
                        "-q")
    assert code == 0 and "9 frames, 6 drawings (2 held)" in out
    shot = Project.open(tmp_path / "p").shot
    assert [c.length for c in shot.cells] == [2, 1, 3, 1, 1, 1] and shot.fps == 24


@pytest.mark.parametrize("argv,message", [
    (["--source", "{tmp}/missing"], "missing"),
    (["--source", "{tmp}/in", "--fps", "0"], "--fps must be between"),
])
def test_new_bad_input(tmp_path, capsys, argv, message):
    _sequence(tmp_path / "in")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = _run(capsys, "new", tmp_path / "p", *argv)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "p" / "project.json").exists()


def test_new_refuses_an_existing_project(tmp_path, capsys):
    src = _sequence(tmp_path / "in")
    assert _run(capsys, "new", tmp_path / "p", "--source", src, "-q")[0] == 0
    code, _, err = _run(capsys, "new", tmp_path / "p", "--source", src, "-q")
    assert code == 2 and "already a project" in err


def test_new_without_source_is_a_usage_error(tmp_path, capsys):
    code, _, err = _run(capsys, "new", tmp_path / "p")
    assert code == 2 and "--source" in err


def _project(tmp_path, capsys):
    assert _run(capsys, "new", tmp_path / "p", "--source", _sequence(tmp_path / "in"), "-q")[0] == 0
    return tmp_path / "p"


def test_keys_mark_remove_and_clear(tmp_path, capsys):
    folder = _project(tmp_path, capsys)
    code, out, _ = _run(capsys, "keys", folder, "--frames", "1,5,9")
    assert code == 0 and out.strip() == "Keys at frames 1, 5, 9."
    code, out, _ = _run(capsys, "keys", folder, "--frames", "5", "--remove")
    assert out.strip() == "Keys at frames 1, 9."
    code, out, _ = _run(capsys, "keys", folder, "--clear", "--frames", "2-4")
    assert out.strip() == "Keys at frames 2, 3, 4."
    code, out, _ = _run(capsys, "keys", folder, "--clear")
    assert code == 0 and out.strip() == "Keys at frames (none)."
    project = Project.open(folder)
    assert not any(d.is_key for d in project.shot.drawings.values())


def test_keys_inside_a_hold_name_the_held_drawing(tmp_path, capsys):
    folder = _project(tmp_path, capsys)
    project = Project.open(folder)
    project.push(SetExposure([0], 3))
    project.save()
    code, out, _ = _run(capsys, "keys", folder, "--frames", "2,4")
    assert code == 0 and "frame 2 holds the drawing of frame 1" in out and "Keys at frames 1, 4." in out


@pytest.mark.parametrize("argv,message", [
    ([], "Give --frames"),
    (["--frames", "1,x"], "'x' is not a frame number"),
    (["--frames", "0"], "Frame 0 does not exist"),
    (["--frames", "1,99"], "Frame 99 is outside the shot (frames 1 to 9)"),
    (["--frames", ","], "No frames were given"),
    (["--frames", "1", "--clear", "--remove"], "do not go together"),
])
def test_keys_bad_input(tmp_path, capsys, argv, message):
    folder = _project(tmp_path, capsys)
    before = (folder / "project.json").read_bytes()
    code, _, err = _run(capsys, "keys", folder, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert (folder / "project.json").read_bytes() == before


def test_info_text_and_json(tmp_path, capsys):
    from project_factories import make_take

    folder = _project(tmp_path, capsys)
    _run(capsys, "keys", folder, "--frames", "1,5,9")
    project = Project.open(folder)

    project.push(AddTake(make_take("tk1", "d0001", "d0005", [2, 3], label="T1")))
    project.push(SetFrameStatus("tk1", [0], "accepted"))
    project.save()

    code, out, _ = _run(capsys, "info", folder, "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["frames"], data["drawings"], data["fps"]) == (9, 9, 24.0)
    assert [k["frame"] for k in data["keys"]] == [1, 5, 9]
    first, second = data["segments"]
    assert (first["start_frame"], first["end_frame"], first["gap"]) == (1, 5, 4)
    assert first["planned"] == {"count": 1, "offsets": [2], "mode": "derived"}
    assert first["takes"] == [{"id": "tk1", "label": "T1", "frames": 2, "accepted": 1, "rejected": 0,
                               "pending": 1, "engine": "test", "seed": 7, "created": "2026-01-01T00:00:00+00:00",
                               "active": True}]
    assert second["takes"] == [] and data["recovery_available"] is False

    code, out, _ = _run(capsys, "info", folder)
    assert code == 0
    assert "keys: 1, 5, 9" in out and "segment 1-5 (4 frames, linear, flow): 1 in-between at +2" in out
    assert "* take T1 (tk1): 2 frames, 1 accepted, 0 rejected, 1 pending" in out


def test_info_reports_a_recovery_copy_and_keys_warn_about_it(tmp_path, capsys):
    folder = _project(tmp_path, capsys)
    project = Project.open(folder)
    project.push(SetExposure([0], 4))
    project.autosave()
    code, out, _ = _run(capsys, "info", folder, "--json")
    assert json.loads(out)["recovery_available"] is True
    code, _out, err = _run(capsys, "keys", folder, "--frames", "1")
    assert code == 0 and "recovery copy" in err
    assert recovery_path(folder).exists()  # another session's unsaved work is not thrown away


@pytest.mark.parametrize("setup,message", [
    ("missing", "does not exist"),
    ("empty", "is not a ToonCrafter Studio project"),
    ("garbage", "invalid JSON"),
    ("future", "newer ToonCrafter Studio"),
])
def test_info_bad_projects(tmp_path, capsys, setup, message):
    folder = tmp_path / "p"
    if setup != "missing":
        folder.mkdir()
    if setup == "garbage":
        (folder / "project.json").write_text("{nope")
    if setup == "future":
        (folder / "project.json").write_text('{"schema_version": 99, "shot": {}}')
    code, out, err = _run(capsys, "info", folder)
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1 and out == ""
