"""The sample shot under resources/ is ours: made by tools/make_sample_shot.py, and it opens."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tooncrafter_studio.core.paths import resources_dir
from tooncrafter_studio.media import import_source, read_image

SAMPLE = resources_dir() / "sample_shot"
TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_sample_shot.py"


def _tool():
    spec = importlib.util.spec_from_file_location("make_sample_shot", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_draws_frames_on_twos(tmp_path):
    tool = _tool()
    paths = tool.write_frames(tmp_path / "frames")
    assert len(paths) == 24
    result = import_source(tmp_path / "frames", detect_holds=True, tolerance=0)
    assert result.groups == [(i, 2) for i in range(0, 24, 2)]
    assert (result.source.width, result.source.height) == (512, 320)


@pytest.mark.skipif(not (SAMPLE / "frames").is_dir(), reason="sample shot not generated")
def test_committed_frames_are_what_the_tool_draws(tmp_path):
    tool = _tool()
    tool.write_frames(tmp_path / "frames")
    committed = sorted((SAMPLE / "frames").glob("*.png"))
    assert [p.name for p in committed] == sorted(p.name for p in (tmp_path / "frames").glob("*.png"))
    for path in committed:  # pixels, not bytes: another zlib may compress differently
        np.testing.assert_array_equal(read_image(path), read_image(tmp_path / "frames" / path.name), path.name)
    assert sum(p.stat().st_size for p in committed) < 1_000_000


@pytest.mark.skipif(not (SAMPLE / "project.json").is_file(), reason="sample project not generated")
def test_sample_project_opens_with_keys():
    project_module = pytest.importorskip("tooncrafter_studio.project.project")
    from tooncrafter_studio.project.resolve import resolve_timeline

    project = project_module.open_project(SAMPLE)
    shot = project.shot
    assert shot.frame_count == 24 and len(shot.cells) == 12
    frames = resolve_timeline(shot)
    assert [f.frame for f in frames if f.kind == "key" and f.new_drawing] == [1, 9, 17]
