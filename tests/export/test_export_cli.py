"""The `export` command on a saved project: naming flags, exit codes and one-line errors."""

from __future__ import annotations

import os

import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.export import parse_xdts
from tooncrafter_studio.media import import_source
from tooncrafter_studio.media.imageio import write_png

from .shots import picture

project_module = pytest.importorskip("tooncrafter_studio.project.project")


@pytest.fixture
def saved_project(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, d in enumerate([0, 0, 1, 1, 2, 2]):  # three drawings on 2s
        write_png(frames / f"ball.{i + 1:04d}.png", picture(d))
    result = import_source(frames, detect_holds=True)
    project = project_module.new_project(tmp_path / "proj", result.source, result.groups, 24.0, name="ball")
    return project.folder


def test_export_command_writes_named_sequence(saved_project, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(["--quiet", "export", str(saved_project), "--out", str(out), "--preset", "blender",
                    "--timing-sheet", "xdts"])
    assert code == 0
    assert sorted(os.listdir(out)) == sorted([f"ball{i:04d}.png" for i in range(1, 7)] + ["ball.export.json", "ball.xdts"])
    assert parse_xdts((out / "ball.xdts").read_text())["ball"] == ["1", "1", "3", "3", "5", "5"]
    assert "Wrote 6 frames" in capsys.readouterr().out


def test_export_command_explicit_naming_drawings_only(saved_project, tmp_path):
    out = tmp_path / "out"
    code = run_cli(["-q", "export", str(saved_project), "--out", str(out), "--name", "shot", "--separator", "_",
                    "--padding", "3", "--start-number", "0", "--drawings-only", "--timing-sheet", "none"])
    assert code == 0
    assert sorted(os.listdir(out)) == ["shot.export.json", "shot_000.png", "shot_001.png", "shot_002.png"]


def test_export_command_refuses_overwrite_with_one_line(saved_project, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ball.0001.png").write_bytes(b"theirs")
    code = run_cli(["-q", "export", str(saved_project), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: 1 file in") and "ball.0001.png" in err and "--overwrite" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert run_cli(["-q", "export", str(saved_project), "--out", str(out), "--overwrite"]) == 0


def test_export_command_missing_project(tmp_path, capsys):
    code = run_cli(["-q", "export", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert code == 2 and capsys.readouterr().err.startswith("error: ")
