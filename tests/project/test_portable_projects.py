"""Projects that move: relative source paths, the missing-drawings state, relinking by name and content."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.media import write_png
from tooncrafter_studio.media.importer import read_frame
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.relink import RelinkSources, missing_drawings, relink_plan


def _footage(folder, shade: int = 0, count: int = 4):
    folder.mkdir(parents=True)
    for i in range(count):
        image = np.full((10, 12, 3), 230 - shade, np.uint8)
        image[2:5, i:i + 3] = 20
        write_png(folder / f"sh010.{i + 1:04d}.png", image)
    return folder


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def studio(tmp_path):
    """show/plates/sh010/*.png and show/projects/sh010 (a project made from them by the CLI)."""
    show = tmp_path / "show"
    _footage(show / "plates" / "sh010")
    assert run_cli(["new", str(show / "projects" / "sh010"), "--source", str(show / "plates" / "sh010"), "-q"]) == 0
    return show


def test_source_outside_the_project_is_stored_relative(studio):
    stored = json.loads((studio / "projects" / "sh010" / "project.json").read_text())["shot"]["sources"][0]
    assert stored["path"] == "../../plates/sh010"
    assert len(stored["hashes"]) == 3  # first, middle and last file fingerprinted


def test_a_copy_of_project_and_drawings_opens_on_another_disk(studio, tmp_path):
    copy = tmp_path / "elsewhere" / "show"
    shutil.copytree(studio, copy)
    shutil.rmtree(studio)  # the original is gone: the copy must not depend on it
    project = Project.open(copy / "projects" / "sh010")
    assert missing_drawings(project.shot, project.folder) == []
    source = next(iter(project.shot.sources.values()))
    assert read_frame(source, 3, project.folder).shape == (10, 12, 3)


def test_a_project_copied_alone_still_finds_drawings_that_stayed(studio, tmp_path):
    shutil.copytree(studio / "projects" / "sh010", tmp_path / "node" / "sh010")
    project = Project.open(tmp_path / "node" / "sh010")
    assert missing_drawings(project.shot, project.folder) == []


def test_missing_drawings_are_reported_and_relinked_without_copying(studio, tmp_path, capsys):
    project_dir = studio / "projects" / "sh010"
    moved = tmp_path / "archive" / "2026" / "sh010"
    moved.parent.mkdir(parents=True)
    shutil.move(studio / "plates" / "sh010", moved)
    assert run_cli(["info", str(project_dir)]) == 0
    assert "4 drawings missing" in capsys.readouterr().out
    archive_before = _files(tmp_path / "archive")

    assert run_cli(["relink", str(project_dir), "--source", str(tmp_path / "archive")]) == 0
    out = capsys.readouterr().out
    assert "Relinked 4 drawings." in out
    project = Project.open(project_dir)
    assert missing_drawings(project.shot, project.folder) == []
    assert _files(tmp_path / "archive") == archive_before  # nothing copied, moved or changed
    assert not list(project_dir.rglob("*.png"))
    stored = json.loads((project_dir / "project.json").read_text())["shot"]["sources"][0]["path"]
    assert stored == "../../../archive/2026/sh010"


def test_same_names_with_other_pictures_are_not_linked(studio, tmp_path, capsys):
    project_dir = studio / "projects" / "sh010"
    shutil.rmtree(studio / "plates" / "sh010")
    _footage(tmp_path / "other" / "sh010", shade=50)  # the same names, other drawings
    before = (project_dir / "project.json").read_bytes()
    assert run_cli(["relink", str(project_dir), "--source", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "other pictures" in err and "None of the 4 missing drawings" in err
    assert (project_dir / "project.json").read_bytes() == before


def test_relinking_is_one_undoable_command(studio, tmp_path):
    shutil.move(studio / "plates" / "sh010", tmp_path / "found")
    project = Project.open(studio / "projects" / "sh010")
    before = next(iter(project.shot.sources.values())).path
    plan = relink_plan(project.shot, project.folder, tmp_path)
    project.push(RelinkSources(plan.paths))
    assert missing_drawings(project.shot, project.folder) == []
    project.undo()
    assert next(iter(project.shot.sources.values())).path == before
    assert len(missing_drawings(project.shot, project.folder)) == 4
