"""A finished take is never lost to a crash: its folder carries a manifest, and a complete take
folder the project does not list (the app was killed before it recorded the take) is found at
open and restored as one undoable command. Hostile or damaged folders are left alone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_factories import BlendEngine, make_project  # noqa: E402

from tooncrafter_studio.pipeline.jobs import segment_job  # noqa: E402
from tooncrafter_studio.pipeline.runner import apply_result, run_job  # noqa: E402
from tooncrafter_studio.pipeline.shared_project import record_take  # noqa: E402
from tooncrafter_studio.project.orphan_takes import TAKE_MANIFEST, RestoreTakes, find_orphan_takes  # noqa: E402
from tooncrafter_studio.project.project import Project  # noqa: E402
from tooncrafter_studio.project.resolve import key_spans  # noqa: E402


def _generate(project: Project, pair: int = 0, seed: int = 3):
    """A take's frames written to disk, as a generation leaves them just before the app records it."""
    span = key_spans(project.shot)[pair]
    return run_job(segment_job(project, span, seed=seed), BlendEngine())


def test_the_take_folder_says_what_it_is(tmp_path):
    project = make_project(tmp_path)
    result = _generate(project)
    manifest = json.loads((project.folder / "takes" / result.take.id / TAKE_MANIFEST).read_text())
    assert manifest["id"] == result.take.id
    assert [f["file"] for f in manifest["frames"]] == [f.file for f in result.take.frames]


def test_a_take_the_project_never_listed_is_offered_back_and_restored_undoably(tmp_path):
    project = make_project(tmp_path)
    first = _generate(project, 0)
    second = _generate(project, 1)
    reopened = Project.open(project.folder)  # the app was killed: project.json lists neither take
    assert reopened.shot.takes == {}
    found = find_orphan_takes(reopened)
    assert {t.id for t in found} == {first.take.id, second.take.id}
    reopened.push(RestoreTakes(found))
    for result in (first, second):
        segment = reopened.shot.segments[(result.take.start_key, result.take.end_key)]
        assert segment.take_ids == [result.take.id] and segment.active_take == result.take.id
        assert reopened.shot.takes[result.take.id].label == "T1"
    assert find_orphan_takes(reopened) == []  # listed now
    reopened.undo()
    assert reopened.shot.takes == {}
    assert len(find_orphan_takes(reopened)) == 0  # the history can bring them back: not offered twice
    reopened.redo()
    reopened.save()
    again = Project.open(project.folder)
    assert set(again.shot.takes) == {first.take.id, second.take.id}
    assert find_orphan_takes(again) == []


def test_a_restored_take_does_not_take_a_label_already_used(tmp_path):
    project = make_project(tmp_path)
    lost = _generate(project)
    kept = _generate(project, seed=4)
    apply_result(kept, project)
    project.save()
    reopened = Project.open(project.folder)
    (found,) = find_orphan_takes(reopened)
    assert found.id == lost.take.id
    reopened.push(RestoreTakes([found]))
    labels = sorted(t.label for t in reopened.shot.takes.values())
    assert labels == ["T1", "T2"]
    assert reopened.shot.segments[(found.start_key, found.end_key)].active_take == kept.take.id


def test_a_landed_take_is_in_project_json_at_once_and_other_edits_stay_unsaved(tmp_path):
    from tooncrafter_studio.project.commands import SetShotProperties

    project = make_project(tmp_path)
    project.push(SetShotProperties(name="renamed, not saved"))
    result = _generate(project)
    was_clean = project.stack.is_clean
    apply_result(result, project)
    assert record_take(project, result.take, was_clean) is True
    on_disk = Project.open(project.folder)
    assert result.take.id in on_disk.shot.takes
    assert on_disk.shot.name != "renamed, not saved"  # only the take was written
    assert project.modified  # the rename is still unsaved in the open document
    assert record_take(project, result.take, False) is False  # twice is harmless


def test_a_landed_take_in_a_clean_document_leaves_it_clean(tmp_path):
    project = make_project(tmp_path)
    result = _generate(project)
    apply_result(result, project)
    record_take(project, result.take, was_clean=True)
    assert not project.modified
    assert result.take.id in Project.open(project.folder).shot.takes


def _orphan_folder(project: Project, result, edit) -> Path:
    folder = project.folder / "takes" / result.take.id
    manifest = folder / TAKE_MANIFEST
    data = json.loads(manifest.read_text())
    edit(folder, manifest, data)
    return folder


HOSTILE = {
    "frame outside the project": lambda f, m, d: m.write_text(json.dumps(
        {**d, "frames": [{**d["frames"][0], "file": "../../../etc/passwd"}]})),
    "absolute frame path": lambda f, m, d: m.write_text(json.dumps(
        {**d, "frames": [{**d["frames"][0], "file": "/etc/passwd"}]})),
    "another take's id": lambda f, m, d: m.write_text(json.dumps({**d, "id": "t0000000000"})),
    "unknown key": lambda f, m, d: m.write_text(json.dumps({**d, "start_key": "nope"})),
    "missing frame": lambda f, m, d: (f / "0001.png").unlink(),
    "not JSON": lambda f, m, d: m.write_bytes(b"\xff\xfe garbage"),
    "a list": lambda f, m, d: m.write_text("[1, 2, 3]"),
    "deep nesting": lambda f, m, d: m.write_text("[" * 100_000 + "]" * 100_000),
    "huge number": lambda f, m, d: m.write_text(json.dumps({**d, "seed": 0}).replace('"seed": 0', '"seed": ' + "9" * 5000)),
    "no manifest": lambda f, m, d: m.unlink(),
    "manifest is a FIFO": lambda f, m, d: (m.unlink(), os.mkfifo(m)),
    "manifest is a folder": lambda f, m, d: (m.unlink(), m.mkdir()),
    "manifest links to /dev/zero": lambda f, m, d: (m.unlink(), m.symlink_to("/dev/zero")),
    "no frames": lambda f, m, d: m.write_text(json.dumps({**d, "frames": []})),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_damaged_or_hostile_take_folders_are_left_alone(tmp_path, case):
    project = make_project(tmp_path)
    result = _generate(project)
    folder = _orphan_folder(project, result, HOSTILE[case])
    before = sorted(p.name for p in folder.iterdir())
    assert find_orphan_takes(Project.open(project.folder)) == []
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing deleted or changed


def test_a_linked_take_folder_and_temporary_folders_are_not_offered(tmp_path):
    project = make_project(tmp_path)
    result = _generate(project)
    takes = project.folder / "takes"
    elsewhere = tmp_path / "elsewhere"
    (takes / result.take.id).rename(elsewhere)
    (takes / result.take.id).symlink_to(elsewhere)
    (takes / ".tmp-t123").mkdir()
    assert find_orphan_takes(Project.open(project.folder)) == []


def test_info_mentions_unlisted_takes(tmp_path, capsys):
    from tooncrafter_studio.cli.main import run_cli

    project = make_project(tmp_path)
    lost = _generate(project)
    capsys.readouterr()
    assert run_cli(["info", str(project.folder)]) == 0
    assert "1 generated take in takes/ is not in the project" in capsys.readouterr().out
    assert run_cli(["info", str(project.folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unlisted_takes"] == [lost.take.id]
