"""A moved copy whose own drawings folder is gone reads the original's drawings only as a fallback,
and says so: in `info`, in every headless edit, in export, and after a save the relative path still
comes first."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import write_png
from tooncrafter_studio.project.moved_copy import original_location_notes
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.relink import missing_drawings


@pytest.fixture
def copies(tmp_path):
    """show/ (plates/sh010 and projects/sh010) and copy/, a full copy whose plates folder was renamed."""
    show = tmp_path / "show"
    (show / "plates" / "sh010").mkdir(parents=True)
    for i in range(3):
        image = np.full((10, 12, 3), 200, np.uint8)
        image[2:5, i:i + 3] = 20
        write_png(show / "plates" / "sh010" / f"sh010.{i + 1:04d}.png", image)
    assert run_cli(["new", str(show / "projects" / "sh010"), "--source", str(show / "plates" / "sh010"), "-q"]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(show, copy)
    (copy / "plates" / "sh010").rename(copy / "plates" / "sh010-renamed")
    return show, copy / "projects" / "sh010"


def test_the_fallback_is_said_in_info(copies, capsys):
    show, project = copies
    capsys.readouterr()
    assert run_cli(["info", str(project)]) == 0
    out = capsys.readouterr().out
    assert f"reading drawings from the original location {show / 'plates' / 'sh010'}" in out
    assert run_cli(["info", str(project), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["original_location"]
    assert len(notes) == 1 and "../../plates/sh010 is missing" in notes[0]


def test_the_fallback_is_said_in_export_and_headless_edits(copies, tmp_path, capsys):
    _show, project = copies
    capsys.readouterr()
    assert run_cli(["export", str(project), "--out", str(tmp_path / "out")]) == 0
    assert "warning: reading drawings from the original location" in capsys.readouterr().out
    assert run_cli(["keys", str(project), "--frames", "1,3"]) == 0
    assert "warning: reading drawings from the original location" in capsys.readouterr().err


def test_a_save_keeps_the_relative_path_first(copies):
    show, folder = copies
    project = Project.open(folder)
    assert missing_drawings(project.shot, project.folder) == []
    assert len(original_location_notes(project.shot)) == 1
    project.save()
    stored = json.loads((folder / "project.json").read_text())["shot"]["sources"][0]
    assert stored["path"] == "../../plates/sh010"  # not the original's absolute path
    (folder.parent.parent / "plates" / "sh010-renamed").rename(folder.parent.parent / "plates" / "sh010")
    again = Project.open(folder)
    assert original_location_notes(again.shot) == []  # the copy's own drawings again
    assert not next(iter(again.shot.sources.values())).path.startswith(str(show))


def test_no_fallback_and_no_note_while_the_relative_path_exists(copies):
    show, folder = copies
    (folder.parent.parent / "plates" / "sh010-renamed").rename(folder.parent.parent / "plates" / "sh010")
    project = Project.open(folder)
    assert original_location_notes(project.shot) == []
    assert not next(iter(project.shot.sources.values())).path.startswith(str(show))
