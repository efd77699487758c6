"""Damaged, hostile or oversized project files: one ProjectError naming the file, never a crash or a hang."""

from __future__ import annotations

import json
import os

import pytest
from project_factories import make_shot

from tooncrafter_studio.core.errors import ProjectError
from tooncrafter_studio.project.project import (
    AUTOSAVE_DIR,
    PROJECT_FILE,
    Project,
    find_recovery,
    recovery_path,
)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "p"
    Project.create(root, make_shot([1] * 5, keys=(0, 4), folder=str(tmp_path / "src")))
    return root


def _edit(folder, change) -> None:
    data = json.loads((folder / PROJECT_FILE).read_text())
    change(data["shot"])
    (folder / PROJECT_FILE).write_text(json.dumps(data))


def _refused(folder, *fragments) -> str:
    with pytest.raises(ProjectError) as info:
        Project.open(folder)
    text = str(info.value)
    assert "\n" not in text and str(folder / PROJECT_FILE) in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_deeply_nested_json_is_damage_not_a_crash(folder):
    (folder / PROJECT_FILE).write_text("[" * 100_000 + "]" * 100_000)
    _refused(folder, "damaged")
    (folder / PROJECT_FILE).write_text('{"schema_version": 1, "shot": ' + "{\"a\": " * 200 + "1" + "}" * 201)
    _refused(folder, "nested")


def test_integer_of_thousands_of_digits(folder):
    _edit(folder, lambda shot: None)
    text = (folder / PROJECT_FILE).read_text().replace('"fps": 24.0', '"fps": ' + "7" * 5000, 1)
    (folder / PROJECT_FILE).write_text(text)
    _refused(folder, "damaged")


@pytest.mark.parametrize("change,fragment", [
    (lambda s: s["cells"][0].update(length=100_000_000), "above the limit of 10,000"),
    (lambda s: s.update(width=20_000, height=20_000), "above the limit of 80 Mpx"),
    (lambda s: s["sources"][0].update(width=100_000, height=1), "above the limit"),
    (lambda s: s["sources"][0].update(frame_count=10**12), "above the limit"),
    (lambda s: s["cells"].extend([{"drawing": "d0001", "length": 9000}] * 20), "more than 100,000 frames"),
    (lambda s: s["sources"][0].update(gaps=list(range(20_000))), "above the limit"),
])
def test_sizes_in_a_small_file_are_bounded(folder, change, fragment):
    _edit(folder, change)
    assert (folder / PROJECT_FILE).stat().st_size < 300_000
    _refused(folder, fragment)


def test_project_file_that_is_a_fifo_is_refused_without_hanging(folder):
    os.unlink(folder / PROJECT_FILE)
    os.mkfifo(folder / PROJECT_FILE)
    _refused(folder, "pipe")


def test_project_file_that_links_to_dev_zero_is_refused(folder):
    os.unlink(folder / PROJECT_FILE)
    os.symlink("/dev/zero", folder / PROJECT_FILE)
    _refused(folder, "device")


def test_oversized_project_file_is_refused_before_reading(folder, monkeypatch):
    import tooncrafter_studio.project.serialize as serialize

    monkeypatch.setattr(serialize, "MAX_PROJECT_FILE_BYTES", 1000)
    _refused(folder, "too large")


def test_a_project_too_large_to_reopen_is_never_saved(folder, monkeypatch):
    """Seen with `generate --seeds 100000`: every take was saved into project.json, which soon outgrew
    what `open` reads (64 MiB): a save the app cannot open again is lost work, so it is refused."""
    import tooncrafter_studio.project.serialize as serialize

    project = Project.open(folder)
    before = (folder / PROJECT_FILE).read_bytes()
    monkeypatch.setattr(serialize, "MAX_PROJECT_FILE_BYTES", len(before) - 1)
    with pytest.raises(ProjectError, match="was not saved") as info:
        project.save()
    assert "\n" not in str(info.value) and "too large" in str(info.value)
    assert (folder / PROJECT_FILE).read_bytes() == before
    monkeypatch.undo()
    assert Project.open(folder).shot.frame_count == 5


def test_damaged_recovery_copy_is_set_aside_and_the_project_still_opens(folder):
    recovery_path(folder).parent.mkdir()
    recovery_path(folder).write_text('{"schema_version": 1, "shot": ' + "[" * 50_000 + "]" * 50_000 + "}")
    said: list[str] = []
    assert find_recovery(folder, said.append) is None
    assert len(said) == 1 and "set aside" in said[0] and "damaged" in said[0]
    kept = list((folder / AUTOSAVE_DIR).glob("project.damaged-*.json"))
    assert len(kept) == 1 and not recovery_path(folder).exists()
    assert Project.open(folder).shot.frame_count == 5


def test_cli_keys_with_a_damaged_recovery_copy_warns_and_works(folder, capsys):
    from tooncrafter_studio.cli.main import run_cli

    recovery_path(folder).parent.mkdir()
    recovery_path(folder).write_text("9" * 5000)
    assert run_cli(["keys", str(folder), "--frames", "1,3"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: The recovery copy is damaged") and err.count("\n") == 1


def test_cli_reports_a_damaged_project_in_one_line(folder, capsys):
    from tooncrafter_studio.cli.main import run_cli

    (folder / PROJECT_FILE).write_text("[" * 100_000)
    before = (folder / PROJECT_FILE).read_bytes()
    assert run_cli(["info", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(folder / PROJECT_FILE) in err
    assert (folder / PROJECT_FILE).read_bytes() == before


def test_keys_with_a_billion_frame_range_is_refused_before_listing(folder, capsys):
    from tooncrafter_studio.cli.main import run_cli

    before = (folder / PROJECT_FILE).read_bytes()
    assert run_cli(["keys", str(folder), "--frames", "1-1000000000"]) == 2
    err = capsys.readouterr().err
    assert "beyond the limit of 100,000 frames" in err and err.count("\n") == 1
    assert (folder / PROJECT_FILE).read_bytes() == before


def test_exposure_edits_cannot_make_a_shot_too_long_to_reopen(folder):
    from tooncrafter_studio.core.errors import InputError
    from tooncrafter_studio.project.commands import InsertFrames, SetExposure

    project = Project.open(folder)
    with pytest.raises(InputError, match="at most 10000"):
        project.push(SetExposure([0], 10_001))
    project.push(SetExposure([0, 1, 2, 3, 4], 10_000))
    with pytest.raises(InputError, match="at most 10000"):
        project.push(InsertFrames(1, 5))
    project.save()
    assert Project.open(folder).shot.frame_count == 50_000
