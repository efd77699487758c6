"""Every naming preset and explicit naming, with exact file names."""

from __future__ import annotations

import pytest

from tooncrafter_studio.core.errors import ExportError
from tooncrafter_studio.export import ExportOptions, preview_names, resolve_naming
from tooncrafter_studio.project.document import Cell, Drawing, Shot


@pytest.mark.parametrize("preset,first,second", [
    ("opentoonz", "name.0001.png", "name.0002.png"),
    ("aftereffects", "name_00001.png", "name_00002.png"),
    ("nuke", "name.1001.png", "name.1002.png"),
    ("blender", "name0001.png", "name0002.png"),
    ("krita", "name0000.png", "name0001.png"),
])
def test_presets(preset, first, second):
    naming = resolve_naming("name", preset)
    assert naming.file_name(0) == first
    assert naming.file_name(1) == second


@pytest.mark.parametrize("separator,padding,start,expected", [
    (".", 3, 7, "shot.007.png"),
    ("_", 6, 0, "shot_000000.png"),
    ("none", 2, 100, "shot100.png"),  # wider numbers are not cut
])
def test_explicit(separator, padding, start, expected):
    assert resolve_naming("shot", "opentoonz", separator, padding, start).file_name(0) == expected


def test_explicit_values_override_only_what_is_given():
    naming = resolve_naming("x", "nuke", padding=6)
    assert naming.file_name(0) == "x.001001.png"
    assert naming.pattern == "x.######.png"


@pytest.mark.parametrize("kwargs,message", [
    ({"preset": "photoshop"}, "Unknown naming preset"),
    ({"separator": "-"}, "Unknown separator"),
    ({"padding": 0}, "Padding"),
    ({"start_number": -1}, "cannot be negative"),
])
def test_invalid(kwargs, message):
    with pytest.raises(ExportError, match=message):
        resolve_naming("name", **kwargs)


@pytest.mark.parametrize("name", ["a/b", "", "bad:name", ".."])
def test_invalid_names(name):
    with pytest.raises(ExportError):
        resolve_naming(name)


def test_name_ending_in_digit_without_separator_refused():
    with pytest.raises(ExportError, match="ends with a digit"):
        resolve_naming("shot2", "blender")
    assert resolve_naming("shot2", "opentoonz").file_name(0) == "shot2.0001.png"


def test_matches_sequence_members():
    naming = resolve_naming("walk", "opentoonz")
    assert naming.matches("walk.0001.png") and naming.matches("walk.12345.PNG")
    assert not naming.matches("walk_0001.png") and not naming.matches("walk.csv")


def test_preview_names_expanded_and_drawings_only():
    shot = Shot(name="walk")
    shot.drawings = {"a": Drawing("a", "s", 0), "b": Drawing("b", "s", 1)}
    shot.cells = [Cell("a", 3), Cell("b", 2)]
    assert preview_names(ExportOptions("out"), shot) == ("walk.0001.png", "walk.0005.png")
    assert preview_names(ExportOptions("out", preset="nuke", drawings_only=True), shot) == (
        "walk.1001.png", "walk.1002.png")
    assert preview_names(ExportOptions("out", name="x", preset="krita"), shot) == ("x0000.png", "x0004.png")
