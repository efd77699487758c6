"""Hostile timing sheets (XDTS and CSV) given to `timing import` and `new --timing`: one line naming the
sheet, exit 2, nothing on disk changed or created; and damaged sheets stored in project.json."""

from __future__ import annotations

import json
import os

import pytest
from hostile_kit import cli, make_project, refused

IDENTIFIER = "exchangeDigitalTimeSheet Save Data"


def _table(**overrides) -> dict:
    table = {"duration": 5, "name": "t", "timeTableHeaders": [{"fieldId": 0, "names": ["A"]}],
             "fields": [{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
                 {"data": [{"id": 0, "values": ["1"]}], "frame": 0}]}]}]}
    table.update(overrides)
    return table


def _xdts(table: dict) -> str:
    return IDENTIFIER + "\n" + json.dumps({"timeTables": [table], "version": 5}, separators=(",", ":"))


def _many_frames(n: int) -> dict:
    return _table(fields=[{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
        {"data": [{"values": ["1"]}], "frame": 0} for i in range(n)]}]}])


CASES = {  # name: (file name, content, words the error must contain)
    "no-identifier": ("cut.xdts", '{"timeTables": []}', "not an XDTS file"),
    "bad-json": ("cut.xdts", IDENTIFIER + "\n{\"timeTables\": [", "invalid JSON"),
    "deep-nesting": ("cut.xdts", IDENTIFIER + "\n" + "[" * 100_000 + "]" * 100_000, "nested"),
    "depth-under-recursion": ("cut.xdts", IDENTIFIER + "\n" + "[" * 40 + "]" * 40, "nested more than 32"),
    "huge-integer": ("cut.xdts", _xdts(_table()).replace('"duration":5', '"duration":' + "9" * 6000), "damaged"),
    "duration-100M": ("cut.xdts", _xdts(_table(duration=100_000_000)), "duration"),
    "duration-zero": ("cut.xdts", _xdts(_table(duration=0)), "duration"),
    "no-tables": ("cut.xdts", IDENTIFIER + "\n" + json.dumps({"timeTables": [], "version": 5}), "no time table"),
    "tables-not-list": ("cut.xdts", IDENTIFIER + "\n" + json.dumps({"timeTables": "x"}), "timeTables"),
    "frame-far-away": ("cut.xdts", _xdts(_table(fields=[{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
        {"data": [{"id": 0, "values": ["1"]}], "frame": 10**12}]}]}])), "frame"),
    "value-object": ("cut.xdts", _xdts(_table(fields=[{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
        {"data": [{"id": 0, "values": [{"a": 1}]}], "frame": 0}]}]}])), "values"),
    "value-megabyte": ("cut.xdts", _xdts(_table(fields=[{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
        {"data": [{"id": 0, "values": ["x" * 1_000_000]}], "frame": 0}]}]}])), "characters long"),
    "too-many-entries": ("cut.xdts", _xdts(_many_frames(200_001)), "200,000"),
    "track-number-huge": ("cut.xdts", _xdts(_table(fields=[{"fieldId": 0, "tracks": [{"trackNo": 10**9,
                                                                                      "frames": []}]}])), "trackNo"),
    "no-cell-track": ("cut.xdts", _xdts(_table(fields=[])), "no cell track"),
    "not-utf8": ("cut.xdts", b"\xff\xfe\x00garbage", "not a text file"),
    "csv-unknown": ("cut.csv", "a,b\n1,2\n", "not a timing sheet this app reads"),
    "csv-empty": ("cut.csv", "", "empty"),
    "csv-wide": ("cut.csv", "Frame," + ",".join(f"L{i}" for i in range(2000)) + "\n1\n", "columns"),
    "csv-long-cell": ("cut.csv", "Frame,A\n1," + "x" * 200_000 + "\n", "damaged CSV"),
    "csv-held-too-long": ("cut.csv", "Frame,A\n1,1\n" + "2,\n" * 10_001, "above the limit of 10,000"),
    "too-large-file": ("cut.xdts", None, "too large"),
}


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("hostile_sheets"))


def _write(path, content):
    if content is None:  # a sparse file past the size limit: refused before it is read
        with open(path, "wb") as handle:
            handle.truncate((16 << 20) + 1)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_timing_import_refuses(capsys, tmp_path, shot, case):
    name, content, words = CASES[case]
    sheet = tmp_path / name
    _write(sheet, content)
    err = refused(capsys, ["timing", "import", shot, sheet], 2, (words,), shot.parent, tmp_path)
    assert name in err or "cell track" in err


@pytest.mark.parametrize("case", ["bad-json", "deep-nesting", "csv-unknown", "too-large-file"])
def test_new_with_bad_timing_creates_nothing(capsys, tmp_path, shot, case):
    name, content, words = CASES[case]
    sheet = tmp_path / name
    _write(sheet, content)
    target = tmp_path / "new-shot"
    refused(capsys, ["new", target, "--source", shot.parent / "footage", "--timing", sheet, "-q"], 2, (words,),
            shot.parent)
    assert not os.path.lexists(target)


def test_sheet_is_not_a_regular_file(capsys, tmp_path, shot):
    fifo = tmp_path / "cut.xdts"
    os.mkfifo(fifo)
    refused(capsys, ["timing", "import", shot, fifo], 2, ("not a regular",), shot.parent)
    refused(capsys, ["timing", "import", shot, tmp_path], 2, ("folder",), shot.parent)


def test_unknown_track_is_one_line(capsys, tmp_path, shot):
    sheet = tmp_path / "cut.xdts"
    sheet.write_text(_xdts(_table()), encoding="utf-8")
    err = refused(capsys, ["timing", "import", shot, sheet, "--track", "Z"], 2, ("no cell track 'Z'",), shot.parent)
    # said once, plainly: not the repr of a KeyError ("The timing sheet has "no cell track ..."")
    assert err.strip().endswith("cut.xdts: The timing sheet has no cell track 'Z' (its cell tracks: A).")


def test_sheet_without_cell_tracks_says_so_once(capsys, tmp_path, shot):
    sheet = tmp_path / "cut.xdts"
    sheet.write_text(_xdts(_table(fields=[], timeTableHeaders=[])), encoding="utf-8")
    err = refused(capsys, ["timing", "import", shot, sheet], 2, ("no cell track",), shot.parent)
    assert err.strip().endswith("cut.xdts: The timing sheet has no cell track.")  # not "has the sheet has"


STORED = {  # damage to the sheet a project keeps
    "entries-not-list": {"duration": 5, "tracks": [{"field": 0, "number": 0, "name": "A", "entries": "x"}]},
    "duration-huge": {"duration": 10**9, "tracks": []},
    "entry-frame-text": {"duration": 5, "tracks": [{"field": 0, "number": 0, "name": "A",
                                                    "entries": [["0", ["1"]]]}]},
    "fps-nan": {"duration": 5, "tracks": [], "fps": float("nan")},
}


@pytest.mark.parametrize("case", sorted(STORED))
def test_damaged_stored_sheet(capsys, tmp_path, case):
    folder = make_project(tmp_path)
    data = json.loads((folder / "project.json").read_text())
    data["shot"]["sheet"] = STORED[case]
    (folder / "project.json").write_text(json.dumps(data))
    code, _out, err = cli(capsys, "info", folder)
    assert code == 2 and err.count("\n") == 1 and "shot.sheet" in err and "project.json" in err, err


def test_timing_export_never_overwrites_by_surprise(capsys, tmp_path, shot):
    existing = tmp_path / "cut.xdts"
    existing.write_text("mine", encoding="utf-8")
    refused(capsys, ["timing", "export", shot, existing], 2, ("exists; add --overwrite",), shot.parent, tmp_path)
    refused(capsys, ["timing", "export", shot, tmp_path / "cut.txt"], 2, (".xdts", ".otio"), shot.parent, tmp_path)
    folder = tmp_path / "out.xdts"
    folder.mkdir()
    refused(capsys, ["timing", "export", shot, folder], 2, ("exists",), shot.parent, tmp_path)
    code, _out, err = cli(capsys, "timing", "export", shot, existing, "--overwrite")
    assert code == 0 and existing.read_text(encoding="utf-8").startswith("exchangeDigitalTimeSheet Save Data"), err
