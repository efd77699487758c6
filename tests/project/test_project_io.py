"""The project folder: round trips, atomic saves under crashes, migrations, refusals, autosave."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from project_factories import make_shot, make_take

from tooncrafter_studio.core.errors import ProjectError
from tooncrafter_studio.project import serialize
from tooncrafter_studio.project.commands import (
    AddTake,
    SetExposure,
    SetFrameStatus,
    SetKeys,
    SetSegmentSettings,
)
from tooncrafter_studio.project.document import ReviewStatus, Source, SourceKind, Spacing
from tooncrafter_studio.project.project import (
    PROJECT_FILE,
    Project,
    find_recovery,
    new_project,
    recover,
    recovery_path,
    shot_from_source,
)
from tooncrafter_studio.project.resolve import resolve_timeline


def _project_with_take(folder: Path) -> Project:
    project = Project.create(folder, make_shot([1] * 9, keys=(0, 8)))
    take = make_take("tk1", "d0001", "d0009", [2, 4, 6], label="A")
    for frame in take.frames:
        (folder / frame.file).parent.mkdir(parents=True, exist_ok=True)
        (folder / frame.file).write_bytes(b"png")
    project.push(AddTake(take))
    project.push(SetFrameStatus("tk1", [1], ReviewStatus.REJECTED))
    project.push(SetSegmentSettings(("d0001", "d0009"), count=3, spacing="explicit", times=[0.2, 0.5, 0.7],
                                    params={"steps": 10}, prompt="walk", seed=99))
    return project


def _doc(folder: Path) -> dict:
    return json.loads((folder / PROJECT_FILE).read_text())


def test_save_and_load_round_trip(tmp_path):
    project = _project_with_take(tmp_path / "shot")
    assert project.modified
    project.save()
    assert not project.modified
    loaded = Project.open(tmp_path / "shot")
    assert loaded.shot == project.shot
    assert resolve_timeline(loaded.shot) == resolve_timeline(project.shot)
    assert loaded.shot.segments[("d0001", "d0009")].settings.spacing is Spacing.EXPLICIT
    assert not loaded.modified
    data = _doc(tmp_path / "shot")
    assert data["schema_version"] == serialize.SCHEMA_VERSION and data["format"] == serialize.FORMAT_NAME
    assert data["shot"]["takes"][0]["frames"][0]["file"] == "takes/tk1/0001.png"


def test_open_accepts_the_json_path_too(tmp_path):
    _project_with_take(tmp_path / "shot").save()
    assert Project.open(tmp_path / "shot" / PROJECT_FILE).folder == (tmp_path / "shot").resolve()


def test_source_inside_the_folder_is_stored_relative(tmp_path):
    folder = tmp_path / "shot"
    footage = folder / "footage"
    footage.mkdir(parents=True)
    project = Project.create(folder, make_shot([1, 1], folder=str(footage)))
    assert _doc(folder)["shot"]["sources"][0]["path"] == "footage"
    moved = tmp_path / "moved"
    folder.rename(moved)
    reopened = Project.open(moved)
    assert reopened.source_folder(reopened.shot.sources["src-1"]) == moved.resolve() / "footage"
    assert project.shot.sources["src-1"].path == "footage"


def test_create_refuses_an_existing_project(tmp_path):
    Project.create(tmp_path / "p", make_shot([1]))
    with pytest.raises(ProjectError, match="already a project"):
        Project.create(tmp_path / "p", make_shot([1]))


def test_new_project_from_a_source_with_holds(tmp_path):
    source = Source("src-a", SourceKind.SEQUENCE, str(tmp_path / "in"), [f"f{i}.png" for i in range(6)],
                    32, 16, fps=12.0, frame_count=6, has_alpha=True, bit_depth=16)
    project = new_project(tmp_path / "walk", source, [(0, 2), (2, 1), (3, 3)], fps=None)
    shot = Project.open(tmp_path / "walk").shot
    assert [(c.drawing_id, c.length) for c in shot.cells] == [("d0001", 2), ("d0003", 1), ("d0004", 3)]
    assert (shot.fps, shot.width, shot.height, shot.has_alpha, shot.bit_depth) == (12.0, 32, 16, True, 16)
    assert shot.name == "walk" and project.shot == shot
    one_per_frame = shot_from_source(source, None, fps=24)
    assert [c.length for c in one_per_frame.cells] == [1] * 6 and one_per_frame.fps == 24


@pytest.mark.parametrize("groups", [[(0, 2), (3, 3)], [(0, 2), (2, 1)], [(0, 0), (0, 6)], [(0, 7)]])
def test_new_project_refuses_groups_that_do_not_tile(tmp_path, groups):
    source = Source("src-a", SourceKind.SEQUENCE, "/x", [str(i) for i in range(6)], 8, 8, frame_count=6)
    with pytest.raises(ProjectError, match="6"):
        new_project(tmp_path / "p", source, groups)
    assert not (tmp_path / "p" / PROJECT_FILE).exists()


# ------------------------------------------------------------------ crashes mid-save


def test_failed_rename_keeps_the_last_good_file(tmp_path, monkeypatch):
    project = _project_with_take(tmp_path / "p")
    project.save()
    good = (tmp_path / "p" / PROJECT_FILE).read_bytes()
    project.push(SetExposure([0], 5))

    def crash(*_args, **_kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ProjectError, match="Could not write"):
        project.save()
    monkeypatch.undo()
    assert (tmp_path / "p" / PROJECT_FILE).read_bytes() == good
    assert project.modified  # still unsaved: nothing pretends it was written
    assert Project.open(tmp_path / "p").shot.cells[0].length == 1
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["project.json", "takes"]


def test_interrupt_in_the_middle_of_writing_keeps_the_last_good_file(tmp_path, monkeypatch):
    project = _project_with_take(tmp_path / "p")
    project.save()
    project.push(SetKeys(["d0005"], True))
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise KeyboardInterrupt  # the process is stopped half-way through the write

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        project.save()
    monkeypatch.undo()
    assert not Project.open(tmp_path / "p").shot.drawings["d0005"].is_key
    assert [p.name for p in (tmp_path / "p").iterdir() if p.name.endswith(".tmp")] == []


def test_a_process_killed_while_saving_leaves_a_loadable_project(tmp_path):
    folder = tmp_path / "p"
    project = Project.create(folder, make_shot([1] * 400, keys=(0, 399)))
    project.save()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from project_factories import make_shot
        from tooncrafter_studio.project.commands import SetExposure
        from tooncrafter_studio.project.project import Project
        p = Project.open({str(folder)!r})
        print("ready", flush=True)
        n = 1
        while True:
            n = n % 50 + 1
            p.push(SetExposure(range(400), n))
            p.save()
            print("saved", flush=True)
    """)
    seen = set()
    for saves in (3, 7, 12):  # killed while it writes the save after these
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(saves):
            assert proc.stdout.readline().strip() == "saved"
        proc.kill()
        proc.wait()
        proc.stdout.close()
        reopened = Project.open(folder)  # whatever moment the kill hit, the file is whole
        lengths = {c.length for c in reopened.shot.cells}
        assert len(lengths) == 1 and reopened.shot.frame_count == 400 * next(iter(lengths))
        seen |= lengths
    assert seen != {1}  # the child really was saving when it was killed
    # temporary files the kills left behind are cleared by a later save once they are old
    leftovers = list(folder.glob(".project.json.*.tmp"))
    then = time.time() - 7200
    for path in leftovers:
        os.utime(path, (then, then))
    fresh = folder / ".project.json.fresh.tmp"
    fresh.write_text("a save in progress elsewhere")
    Project.open(folder).save()
    assert list(folder.glob(".project.json.*.tmp")) == [fresh]


# ------------------------------------------------------------------ refusals


def _write(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / PROJECT_FILE).write_text(text)
    return folder


def _saved_doc(tmp_path) -> dict:
    _project_with_take(tmp_path / "good").save()
    return _doc(tmp_path / "good")


@pytest.mark.parametrize("bad_file", ["../outside.png", "/etc/passwd", "C:\\frames\\x.png",
                                      "takes/../../x.png", "\\\\server\\share\\x.png", ""])
def test_take_files_outside_the_folder_are_refused(tmp_path, bad_file):
    data = _saved_doc(tmp_path)
    data["shot"]["takes"][0]["frames"][0]["file"] = bad_file
    with pytest.raises(ProjectError, match=r"shot\.takes\[0\]\.frames\[0\]\.file"):
        Project.open(_write(tmp_path / "bad", data))


def test_a_symlink_leading_out_of_the_folder_is_refused(tmp_path):
    data = _saved_doc(tmp_path)
    folder = _write(tmp_path / "bad", data)
    (tmp_path / "elsewhere").mkdir()
    (folder / "takes").mkdir()
    (folder / "takes" / "tk1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ProjectError, match="through a link"):
        Project.open(folder)


def test_a_symlinked_frame_file_leading_out_is_refused(tmp_path):
    data = _saved_doc(tmp_path)
    folder = _write(tmp_path / "bad", data)
    (folder / "takes" / "tk1").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (folder / "takes" / "tk1" / "0002.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(ProjectError, match=r"frames\[1\]\.file is unsafe.*through a link"):
        Project.open(folder)


def test_unsafe_take_id_is_refused(tmp_path):
    data = _saved_doc(tmp_path)
    data["shot"]["takes"][0]["id"] = "../../evil"
    with pytest.raises(ProjectError, match="not a valid id"):
        Project.open(_write(tmp_path / "bad", data))


def test_future_schema_is_refused(tmp_path):
    data = _saved_doc(tmp_path)
    data["schema_version"] = serialize.SCHEMA_VERSION + 6
    with pytest.raises(ProjectError, match="newer ToonCrafter Studio.*Update the app"):
        Project.open(_write(tmp_path / "bad", data))


@pytest.mark.parametrize("text,message", [
    ('{"schema_version": 1, "shot": {', "invalid JSON at line 1"),
    ("", "invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"hello": 1}', "no schema_version"),
    ('{"schema_version": "one", "shot": {}}', "invalid schema_version"),
    ('{"schema_version": 1}', "'shot' is missing"),
])
def test_malformed_files_are_refused(tmp_path, text, message):
    with pytest.raises(ProjectError, match=message):
        Project.open(_write(tmp_path / "bad", text))


def test_binary_garbage_is_refused(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / PROJECT_FILE).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProjectError, match="project.json"):
        Project.open(folder)


@pytest.mark.parametrize("mutate,message", [
    (lambda s: s["cells"][0].pop("drawing"), r"shot\.cells\[0\]\.drawing is missing"),
    (lambda s: s.pop("cells"), r"shot\.cells is missing"),
    (lambda s: s["drawings"][0].pop("source"), r"shot\.drawings\[0\]\.source is missing"),
    (lambda s: s["sources"][0].pop("path"), r"shot\.sources\[0\]\.path is missing"),
    (lambda s: s["takes"][0]["frames"][0].pop("time"), r"frames\[0\]\.time is missing"),
    (lambda s: s["cells"][0].update(length=0), r"length should be at least 1"),
    (lambda s: s["cells"][0].update(length="2"), r"length should be a whole number"),
    (lambda s: s["cells"][0].update(drawing="nope"), r"drawing 'nope'"),
    (lambda s: s["drawings"][1].update(id="d0001"), r"used twice"),
    (lambda s: s["drawings"][0].update(frame=99), r"has 9"),
    (lambda s: s["segments"][0].update(takes=["ghost"]), r"take 'ghost'"),
    (lambda s: s["segments"][0].update(active_take="zz"), r"active_take 'zz'"),
    (lambda s: s["takes"][0]["frames"][0].update(status="meh"), r"expected one of"),
    (lambda s: s["takes"][0]["frames"][0].update(time=1.5), r"inside \(0, 1\)"),
    (lambda s: s["segments"][0]["settings"].update(spacing="zigzag"), r"spacing is 'zigzag'"),
    (lambda s: s.update(fps=-1), r"fps should be above 0"),
    (lambda s: s["segments"][0]["settings"].update(times=[0.5, 0.2]), r"settings: Explicit in-between times must"),
])
def test_damaged_fields_are_refused_by_name(tmp_path, mutate, message):
    data = _saved_doc(tmp_path)
    mutate(data["shot"])
    with pytest.raises(ProjectError, match=message):
        Project.open(_write(tmp_path / "bad", data))


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="a ToonCrafter Studio project"):
        Project.open(tmp_path / "empty")


# ------------------------------------------------------------------ migrations

V0_FILE = """
{
  "name": "bounce",
  "fps": 12,
  "source": {"path": "/footage/bounce", "files": ["b.0001.png", "b.0002.png", "b.0003.png",
             "b.0004.png", "b.0005.png"], "width": 320, "height": 200, "alpha": true},
  "exposures": [[0, 2], [2, 1], [3, 4], [4, 1]],
  "keys": [0, 4],
  "takes": [{"id": "old1", "keys": [0, 4], "files": ["takes/old1/a.png", "takes/old1/b.png"],
             "offsets": [2, 5], "times": [0.33, 0.66], "status": ["accepted", "rejected"],
             "seed": 5, "engine": "flow"}]
}
"""


def test_v0_file_migrates_to_the_current_schema(tmp_path):
    folder = _write(tmp_path / "old", V0_FILE)
    shot = Project.open(folder).shot
    assert (shot.name, shot.fps, shot.width, shot.height, shot.has_alpha) == ("bounce", 12.0, 320, 200, True)
    assert [(c.drawing_id, c.length) for c in shot.cells] == [("d0001", 2), ("d0003", 1), ("d0004", 4),
                                                              ("d0005", 1)]
    assert [d for d, drawing in shot.drawings.items() if drawing.is_key] == ["d0001", "d0005"]
    segment = shot.segments[("d0001", "d0005")]
    assert segment.take_ids == ["old1"] and segment.active_take == "old1"
    take = shot.takes["old1"]
    assert [(f.offset, f.time, f.status) for f in take.frames] == [(2, 0.33, "accepted"), (5, 0.66, "rejected")]
    assert take.seed == 5 and take.engine == {"engine": "flow"}
    frames = resolve_timeline(shot)
    assert frames[2].image.kind == "take" and "holds old1-1" in frames[5].note
    # saving writes the current schema, which reads back the same
    project = Project.open(folder)
    project.save()
    assert _doc(folder)["schema_version"] == serialize.SCHEMA_VERSION
    assert Project.open(folder).shot == shot


def test_incomplete_v0_file_is_refused_clearly(tmp_path):
    folder = _write(tmp_path / "old", '{"exposures": [[0, 1]]}')
    with pytest.raises(ProjectError, match="schema 0 but is incomplete"):
        Project.open(folder)


def test_migration_registry_chains_every_version():
    assert sorted(serialize.MIGRATIONS) == list(range(serialize.SCHEMA_VERSION))


# ------------------------------------------------------------------ autosave and recovery


def test_autosave_then_recover_after_a_crash(tmp_path):
    folder = tmp_path / "p"
    project = _project_with_take(folder)
    project.save()
    assert not project.autosave()  # nothing unsaved
    project.push(SetExposure([3], 4))
    assert project.autosave()
    assert not project.autosave()  # nothing new since
    assert recovery_path(folder).exists()
    edited = copy.deepcopy(project.shot)
    del project  # the app dies here

    found = find_recovery(folder)
    assert found is not None and found.saved_at and found.project_saved_at
    assert Project.open(folder).shot.cells[3].length == 1  # project.json is the last save
    recovered = recover(folder)
    assert recovered.shot == edited and recovered.modified
    recovered.save()
    assert not recovery_path(folder).exists() and find_recovery(folder) is None
    assert Project.open(folder).shot == edited


def test_undo_back_to_saved_state_drops_the_recovery_copy(tmp_path):
    project = _project_with_take(tmp_path / "p")
    project.save()
    project.push(SetExposure([3], 4))
    project.autosave()
    project.undo()
    assert not project.autosave()
    assert find_recovery(tmp_path / "p") is None and not recovery_path(tmp_path / "p").exists()


def test_stale_identical_or_damaged_recovery_copies_are_not_offered(tmp_path):
    folder = tmp_path / "p"
    project = _project_with_take(folder)
    project.save()
    # identical content
    project.autosave(force=True)
    assert find_recovery(folder) is None
    # older than project.json
    project.push(SetExposure([3], 4))
    project.autosave()
    old = time.time() - 100
    os.utime(recovery_path(folder), (old, old))
    assert find_recovery(folder) is None
    # damaged: set aside (renamed, kept for a person to look at), never offered
    recovery_path(folder).write_text("{broken")
    assert find_recovery(folder) is None
    assert not recovery_path(folder).exists()
    assert [p.read_text() for p in recovery_path(folder).parent.glob("project.damaged-*.json")] == ["{broken"]


# ------------------------------------------------------------------ take folders


def test_garbage_collection_keeps_what_undo_or_redo_can_restore(tmp_path):
    folder = tmp_path / "p"
    project = _project_with_take(folder)
    project.save()
    project.stack.undo()
    project.stack.undo()
    project.stack.undo()  # the add-take is undone: the take is hidden, its files stay
    assert "tk1" not in project.shot.takes
    project.save(collect_garbage=True)
    assert (folder / "takes" / "tk1" / "0001.png").exists()
    project.stack.redo()
    assert project.shot.takes["tk1"].frames[0].file == "takes/tk1/0001.png"

    (folder / "takes" / "stray").mkdir()
    (folder / "takes" / ".tmp-running").mkdir()
    reserved = project.new_take_id()
    (folder / "takes" / reserved).mkdir()
    assert project.collect_garbage() == ["stray"]
    assert (folder / "takes" / ".tmp-running").exists() and (folder / "takes" / reserved).exists()
    project.release_take_id(reserved)
    assert project.collect_garbage() == [reserved]

    project.stack.undo()
    project.save()
    fresh = Project.open(folder)  # no history: nothing can bring tk1 back
    assert fresh.collect_garbage() == ["tk1"]


def test_garbage_collection_spares_takes_of_the_recovery_copy(tmp_path):
    folder = tmp_path / "p"
    project = _project_with_take(folder)
    project.autosave()  # the recovery copy refers to tk1; project.json does not
    fresh = Project.open(folder)
    assert fresh.collect_garbage() == []
    assert (folder / "takes" / "tk1").exists()


def test_save_as_copies_takes(tmp_path):
    project = _project_with_take(tmp_path / "a")
    project.save_as(tmp_path / "b")
    assert (tmp_path / "b" / "takes" / "tk1" / "0002.png").read_bytes() == b"png"
    reopened = Project.open(tmp_path / "b")
    assert reopened.shot.takes == project.shot.takes
    assert project.folder == (tmp_path / "b").resolve() and not project.modified


def test_path_of_refuses_escapes(tmp_path):
    project = Project.create(tmp_path / "p", make_shot([1]))
    assert project.path_of("takes/x/0001.png") == project.folder / "takes/x/0001.png"
    with pytest.raises(ProjectError, match="outside"):
        project.path_of("../x.png")
    with pytest.raises(ProjectError, match="valid take id"):
        project.take_dir("../x")


def test_garbage_collection_keeps_folders_whose_frames_another_take_reuses(tmp_path):
    from tooncrafter_studio.project.commands import RemoveTake

    folder = tmp_path / "p"
    project = _project_with_take(folder)
    patch = make_take("tk2", "d0001", "d0009", [4])
    patch.frames = [project.shot.takes["tk1"].frames[0]] + patch.frames  # reuses tk1's first frame
    (folder / "takes" / "tk2").mkdir()
    project.push(AddTake(patch))
    project.push(RemoveTake("tk1"))
    project.save()
    fresh = Project.open(folder)  # no history: tk1 is gone from the document, its frame is not
    assert "tk1" not in fresh.shot.takes
    assert fresh.collect_garbage() == []
    assert (folder / "takes" / "tk1" / "0001.png").exists()


def test_garbage_collection_removes_only_stale_temporary_folders(tmp_path):
    folder = tmp_path / "p"
    project = _project_with_take(folder)
    old, recent = folder / "takes" / ".tmp-told", folder / "takes" / ".tmp-tnew"
    old.mkdir()
    recent.mkdir()
    then = time.time() - 7200
    os.utime(old, (then, then))
    assert project.collect_garbage() == [".tmp-told"]
    assert recent.exists() and (folder / "takes" / "tk1").exists()


def test_save_as_copies_takes_that_undo_can_restore(tmp_path):
    from tooncrafter_studio.project.commands import RemoveTake

    project = _project_with_take(tmp_path / "a")
    project.push(RemoveTake("tk1"))
    project.save_as(tmp_path / "b")
    project.undo()
    assert project.path_of(project.shot.takes["tk1"].frames[0].file).read_bytes() == b"png"
    assert project.folder == (tmp_path / "b").resolve()
