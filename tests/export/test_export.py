"""Export of a shot: what is written, timing sheets parsed back, round trips, safety, cancel."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tooncrafter_studio.core.errors import Cancelled, ExportError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.export import ExportOptions, export_sequence, parse_csv, parse_xdts
from tooncrafter_studio.export import exporter as exporter_module
from tooncrafter_studio.media import read_image

from .shots import build_shot, picture


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    return folder, build_shot(folder)


def listing(folder: Path) -> list[str]:
    """The folder's entries; none when a failed export removed the folder it had made."""
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_expanded_export_holds_rejected_and_skips_pending(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    report = export_sequence(folder, shot, ExportOptions(out, timing_sheet="none", sidecar=False))
    names = [f"walk.{i:04d}.png" for i in range(1, 8)]
    assert report.files == names and listing(out) == names
    expected = [picture(0), picture(100), picture(100), picture(100), picture(1), picture(1), picture(2)]
    for name, want in zip(names, expected):
        np.testing.assert_array_equal(read_image(out / name), want, err_msg=name)
    assert report.held_in_place == [3, 4]
    assert report.drawing_count == 4 and report.frame_count == 7


def test_include_pending(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out, include_pending=True, timing_sheet="none", sidecar=False))
    np.testing.assert_array_equal(read_image(out / "walk.0003.png"), picture(100))  # rejected: held
    np.testing.assert_array_equal(read_image(out / "walk.0004.png"), picture(102))  # pending: included


def test_drawings_only_with_sheets(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    report = export_sequence(folder, shot, ExportOptions(out, preset="nuke", drawings_only=True))
    assert report.files == ["walk.1001.png", "walk.1002.png", "walk.1003.png", "walk.1004.png"]
    assert listing(out) == sorted(report.files + ["walk.csv", "walk.xdts", "walk.export.json"])
    for name, value in zip(report.files, (0, 100, 1, 2)):
        np.testing.assert_array_equal(read_image(out / name), picture(value))
    cells = parse_xdts((out / "walk.xdts").read_text(encoding="utf-8"))
    assert cells == {"walk": ["1001", "1002", "1002", "1002", "1003", "1003", "1004"]}
    rows = parse_csv((out / "walk.csv").read_text(encoding="utf-8"))
    assert [r["frame"] for r in rows] == [str(i) for i in range(1001, 1008)]  # the files' numbering
    assert [r["drawing"] for r in rows] == ["1001", "1002", "1002", "1002", "1003", "1003", "1004"]
    assert [r["file"] for r in rows][:4] == ["walk.1001.png", "walk.1002.png", "walk.1002.png", "walk.1002.png"]
    assert [r["kind"] for r in rows] == ["key", "inbetween", "inbetween", "inbetween", "key", "key", "drawing"]
    assert [r["image"] for r in rows] == ["source", "take", "take", "take", "source", "source", "source"]
    assert [r["status"] for r in rows][:4] == ["", "accepted", "rejected", "pending"]
    assert "rejected" in rows[2]["note"] and "holds" in rows[2]["note"]
    assert "pending" in rows[3]["note"]


def test_expanded_sheets_name_the_file_where_each_exposure_starts(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out, preset="aftereffects", timing_sheet="both"))
    cells = parse_xdts((out / "walk.xdts").read_text(encoding="utf-8"))
    assert cells["walk"] == ["1", "2", "2", "2", "5", "5", "7"]
    rows = parse_csv((out / "walk.csv").read_text(encoding="utf-8"))
    assert [r["file"] for r in rows] == [f"walk_{i:05d}.png" for i in range(1, 8)]


def test_xdts_structure(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out, timing_sheet="xdts", sidecar=False))
    text = (out / "walk.xdts").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    assert first == "exchangeDigitalTimeSheet Save Data"
    doc = json.loads(body)
    assert doc["version"] == 5 and doc["header"] == {"cut": "1", "scene": "1"}
    table = doc["timeTables"][0]
    assert table["duration"] == 7
    assert table["timeTableHeaders"] == [{"fieldId": 0, "names": ["walk"]}]
    frames = table["fields"][0]["tracks"][0]["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 4, 6, 7]  # changes only, then the end marker
    assert frames[-1]["data"][0]["values"] == ["SYMBOL_NULL_CELL"]
    assert listing(out) == sorted([f"walk.{i:04d}.png" for i in range(1, 8)] + ["walk.xdts"])


def test_sidecar_provenance(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out, timing_sheet="csv"))
    data = json.loads((out / "walk.export.json").read_text(encoding="utf-8"))
    assert [k["frame"] for k in data["keys"]] == [1, 5]
    (take,) = data["takes"]
    assert take["id"] == "t1" and take["seed"] == 1234
    assert take["engine"] == {"engine": "flow", "model": "farneback"}
    assert take["params"]["times"] == [0.25, 0.5, 0.75]
    assert [f["status"] for f in take["frames"]] == ["accepted", "rejected", "pending"]
    assert data["naming"]["pattern"] == "walk.####.png"
    assert {w["name"] for w in data["written"]} == {f"walk.{i:04d}.png" for i in range(1, 8)} | {"walk.csv"}
    assert len(data["frames"]) == 7


@pytest.mark.parametrize("copy_unchanged", [True, False])
def test_alpha_round_trip_exact(tmp_path, copy_unchanged):
    folder = tmp_path / "project"
    shot = build_shot(folder, channels=4)
    assert shot.has_alpha
    out = tmp_path / "out"
    report = export_sequence(folder, shot, ExportOptions(out, timing_sheet="none", sidecar=False,
                                                         copy_unchanged=copy_unchanged))
    first = read_image(out / "walk.0001.png")
    assert first.shape[2] == 4
    np.testing.assert_array_equal(first, picture(0, channels=4))  # straight alpha, exact
    inbetween = read_image(out / "walk.0002.png")  # an RGB take frame in an RGBA sequence: opaque
    np.testing.assert_array_equal(inbetween[..., :3], picture(100))
    assert inbetween[..., 3].min() == 255
    assert any("opaque" in w for w in report.warnings)


@pytest.mark.parametrize("copy_unchanged", [True, False])
def test_16_bit_round_trip_exact(tmp_path, copy_unchanged):
    folder = tmp_path / "project"
    shot = build_shot(folder, channels=4, dtype=np.uint16)
    assert shot.bit_depth == 16
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out, timing_sheet="none", sidecar=False,
                                                copy_unchanged=copy_unchanged))
    first = read_image(out / "walk.0001.png")
    assert first.dtype == np.uint16
    np.testing.assert_array_equal(first, picture(0, channels=4, dtype=np.uint16))
    inbetween = read_image(out / "walk.0002.png")  # 8-bit take frame scaled exactly to 16 bits
    np.testing.assert_array_equal(inbetween[..., :3], picture(100).astype(np.uint16) * 257)


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_counts_write_identical_files(project, tmp_path, workers):
    folder, shot = project
    out = tmp_path / f"out{workers}"
    export_sequence(folder, shot, ExportOptions(out, workers=workers, timing_sheet="none", sidecar=False))
    reference = tmp_path / "ref"
    export_sequence(folder, shot, ExportOptions(reference, workers=1, timing_sheet="none", sidecar=False))
    assert tree_digest(out) == tree_digest(reference)


def test_progress_reaches_total(project, tmp_path):
    folder, shot = project
    events = []
    export_sequence(folder, shot, ExportOptions(tmp_path / "out"), progress=events.append)
    exports = [e for e in events if e.stage == "export"]
    assert exports[0].done == 0 and exports[-1].done == exports[-1].total == 7
    assert events[-1].stage == "finish" and events[-1].done == events[-1].total


def test_refuses_to_overwrite_foreign_files(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    out.mkdir()
    (out / "walk.0003.png").write_bytes(b"someone else's render")
    (out / "walk.csv").write_text("their sheet")
    with pytest.raises(ExportError, match=r"2 files in .* would be overwritten \(walk\.0003\.png, walk\.csv\)"):
        export_sequence(folder, shot, ExportOptions(out))
    assert listing(out) == ["walk.0003.png", "walk.csv"]
    assert (out / "walk.0003.png").read_bytes() == b"someone else's render"
    export_sequence(folder, shot, ExportOptions(out, overwrite=True))
    np.testing.assert_array_equal(read_image(out / "walk.0003.png"), picture(100))


def test_re_export_replaces_own_files_and_removes_stale_ones(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out))
    shot.cells = shot.cells[:2]  # the shot is now 6 frames
    report = export_sequence(folder, shot, ExportOptions(out))  # no overwrite flag needed: our own files
    assert report.removed_stale == ["walk.0007.png"]
    assert listing(out) == sorted([f"walk.{i:04d}.png" for i in range(1, 7)]
                                  + ["walk.csv", "walk.xdts", "walk.export.json"])


def test_re_export_does_not_touch_an_edited_file(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out))
    (out / "walk.0002.png").write_bytes(b"hand-fixed by the animator")
    with pytest.raises(ExportError, match="walk.0002.png"):
        export_sequence(folder, shot, ExportOptions(out))


def test_foreign_sequence_members_are_reported(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    out.mkdir()
    (out / "walk.0100.png").write_bytes(b"x")
    report = export_sequence(folder, shot, ExportOptions(out))
    assert any("walk.0100.png" in w for w in report.warnings)


def _failing_open(after: int, err: int):
    real_open = open
    count = {"n": 0}

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "x" in mode or "w" in mode:
            count["n"] += 1
            if count["n"] > after:
                handle.close()
                raise OSError(err, os.strerror(err), str(path))
        return handle
    return fake_open


def test_full_disk_leaves_nothing_and_project_untouched(project, tmp_path, monkeypatch):
    folder, shot = project
    before = tree_digest(folder)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("already here")
    monkeypatch.setattr(exporter_module, "open", _failing_open(3, errno.ENOSPC), raising=False)
    with pytest.raises(ExportError, match="disk is full"):
        export_sequence(folder, shot, ExportOptions(out, workers=2))
    assert listing(out) == ["keep.txt"]  # nothing written, temporary folder gone
    assert tree_digest(folder) == before


def test_unwritable_folder(project, tmp_path, monkeypatch):
    folder, shot = project
    out = tmp_path / "locked"
    real_mkdir = os.mkdir

    def deny(path, *args, **kwargs):
        if str(path).startswith(str(out)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)
    monkeypatch.setattr(os, "mkdir", deny)
    with pytest.raises(ExportError, match="No permission to write .*locked"):
        export_sequence(folder, shot, ExportOptions(out))


def test_unwritable_files_in_existing_folder(project, tmp_path, monkeypatch):
    folder, shot = project
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(exporter_module, "open", _failing_open(0, errno.EACCES), raising=False)
    with pytest.raises(ExportError, match="No permission"):
        export_sequence(folder, shot, ExportOptions(out))
    assert listing(out) == []


def test_out_dir_that_is_a_file(project, tmp_path):
    folder, shot = project
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError):
        export_sequence(folder, shot, ExportOptions(tmp_path / "file" / "out"))


def test_cancel_removes_everything_written(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    token = CancelToken()

    def cancel_midway(event):
        if event.stage == "export" and event.done >= 2:
            token.cancel()
    with pytest.raises(Cancelled):
        export_sequence(folder, shot, ExportOptions(out, workers=1), progress=cancel_midway, cancel=token)
    assert listing(out) == []


def test_cancel_raised_by_the_progress_callback(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"

    def stop(event):
        if event.stage == "finish":
            raise Cancelled()
    with pytest.raises(Cancelled):
        export_sequence(folder, shot, ExportOptions(out), progress=stop)
    assert listing(out) == []


def test_missing_take_file_is_a_clear_error(project, tmp_path):
    folder, shot = project
    (folder / "takes" / "t1" / "0001.png").unlink()
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"walk\.0002\.png.*0001\.png"):
        export_sequence(folder, shot, ExportOptions(out))
    assert listing(out) == []


def test_empty_output_folder_refused(project):
    folder, shot = project
    with pytest.raises(ExportError, match="Choose a folder"):
        export_sequence(folder, shot, ExportOptions(""))


def test_bad_timing_sheet_option(project, tmp_path):
    folder, shot = project
    with pytest.raises(ExportError, match="timing sheet"):
        export_sequence(folder, shot, ExportOptions(tmp_path / "o", timing_sheet="pdf"))


def test_an_edited_sidecar_cannot_make_export_delete_other_files(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    export_sequence(folder, shot, ExportOptions(out))
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (out / "notes.txt").write_text("mine")
    sidecar = out / "walk.export.json"
    data = json.loads(sidecar.read_text())
    data["written"] += [{"name": "../precious.txt", "size": 7}, {"name": "notes.txt", "size": 4}]
    sidecar.write_text(json.dumps(data))
    report = export_sequence(folder, shot, ExportOptions(out))
    assert report.removed_stale == []
    assert victim.read_text() == "keep me" and (out / "notes.txt").exists()


def test_source_pngs_in_the_output_layout_are_copied_byte_for_byte(project, tmp_path):
    folder, shot = project
    source_bytes = (folder / "media" / "src.0001.png").read_bytes()
    copied = tmp_path / "copied"
    export_sequence(folder, shot, ExportOptions(copied, timing_sheet="none", sidecar=False))
    assert (copied / "walk.0001.png").read_bytes() == source_bytes
    encoded = tmp_path / "encoded"
    export_sequence(folder, shot, ExportOptions(encoded, timing_sheet="none", sidecar=False, copy_unchanged=False,
                                                compression=9))
    assert (encoded / "walk.0001.png").read_bytes() != source_bytes
    np.testing.assert_array_equal(read_image(encoded / "walk.0001.png"), read_image(copied / "walk.0001.png"))


def test_grey_source_is_converted_not_copied(tmp_path):
    from PIL import Image

    from tooncrafter_studio.media import import_source
    from tooncrafter_studio.project.document import Cell, Drawing, Shot

    folder = tmp_path / "project"
    (folder / "media").mkdir(parents=True)
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(grey, "L").save(folder / "media" / "g.0001.png")
    source = import_source(folder / "media").source
    shot = Shot(name="g", width=8, height=6)
    shot.sources[source.id] = source
    shot.drawings["a"] = Drawing("a", source.id, 0)
    shot.cells = [Cell("a", 1)]
    export_sequence(folder, shot, ExportOptions(tmp_path / "out", timing_sheet="none", sidecar=False))
    out = read_image(tmp_path / "out" / "g.0001.png")
    assert out.shape == (6, 8, 3)
    with Image.open(tmp_path / "out" / "g.0001.png") as im:
        assert im.mode == "RGB"  # every file of a sequence has the same layout


def test_failure_while_moving_into_place_restores_the_folder(project, tmp_path, monkeypatch):
    folder, shot = project
    out = tmp_path / "out"
    out.mkdir()
    (out / "walk.0001.png").write_bytes(b"old one")
    (out / "walk.0005.png").write_bytes(b"old five")
    before = tree_digest(out)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst, *args, **kwargs):
        if Path(dst).parent == out:
            calls["n"] += 1
            if calls["n"] == 6:
                raise OSError(errno.EIO, "I/O error", str(dst))
        return real_replace(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(ExportError, match="I/O error"):
        export_sequence(folder, shot, ExportOptions(out, overwrite=True))
    monkeypatch.setattr(os, "replace", real_replace)
    assert tree_digest(out) == before
    assert listing(out) == ["walk.0001.png", "walk.0005.png"]


def test_cancel_after_completion_is_ignored(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"

    def late_cancel(event):
        if event.stage == "finish" and event.done == event.total:
            raise Cancelled()
    report = export_sequence(folder, shot, ExportOptions(out), progress=late_cancel)
    assert set(report.files) <= set(listing(out))


def test_temp_folder_of_a_killed_export_is_cleaned_up(project, tmp_path):
    folder, shot = project
    out = tmp_path / "out"
    old = out / ".tooncrafter-export-dead0000"
    old.mkdir(parents=True)
    (old / "walk.0001.png").write_bytes(b"half")
    os.utime(old, (0, 0))
    recent = out / ".tooncrafter-export-busy0000"
    recent.mkdir()
    export_sequence(folder, shot, ExportOptions(out))
    assert not old.exists() and recent.exists()
