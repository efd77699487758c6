"""`export` with drawings missing stops before writing anything and names `relink` (exit 2)."""

from __future__ import annotations

import shutil

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.paths import resources_dir


def test_export_with_a_missing_drawing_names_relink(tmp_path, capsys):
    shot = tmp_path / "shot"
    shutil.copytree(resources_dir() / "sample_shot", shot)
    moved = tmp_path / "moved"
    (shot / "frames").rename(moved)  # the frames folder was moved away
    code = run_cli(["-q", "export", str(shot), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "frames/ball.0001.png" in err and f"tooncrafter-studio relink {shot} --source" in err
    assert not (tmp_path / "out").exists()
    assert run_cli(["-q", "relink", str(shot), "--source", str(moved)]) == 0
    assert run_cli(["-q", "export", str(shot), "--out", str(tmp_path / "out")]) == 0
