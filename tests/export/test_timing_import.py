"""Timing sheets in: a sheet sets the exposures and marks the in-betweens; generating makes exactly
those frames; the timing exports back to an equal XDTS."""

from __future__ import annotations

import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.export.sheet_io import parse_sheet, read_sheet, xdts_sheet_text
from tooncrafter_studio.export.sheet_timing import plan_import, shot_sheet
from tooncrafter_studio.export.timing import SheetRow, xdts_text
from tooncrafter_studio.project.project import open_project
from tooncrafter_studio.project.resolve import key_spans, resolve_timeline
from tooncrafter_studio.project.timing_sheet import normalized

from .timing_sheets import make_keys, two_track_sheet, xdts


def test_sheet_to_frames_to_equal_xdts(tmp_path, capsys):
    """The done-criterion, end to end through the CLI and the flow engine."""
    keys = make_keys(tmp_path / "keys")
    sheet_path = tmp_path / "cut12.xdts"
    sheet_path.write_text(xdts(two_track_sheet()), encoding="utf-8")
    project_dir = tmp_path / "shot"
    assert run_cli(["new", str(project_dir), "--source", str(keys), "--timing", str(sheet_path), "-q"]) == 0
    out = capsys.readouterr()
    assert "Other cell tracks not imported (kept in the sheet): B." in out.out
    assert "Dialogue 'Serif' (read-only, kept): 3: Hello!." in out.out
    assert "Camera work 'Camera'" in out.out

    shot = open_project(project_dir).shot
    labels = [f.label for f in resolve_timeline(shot)]
    assert labels == ["1"] * 8 + ["2"] * 4 + ["×"] * 2 + ["3"] * 6 + ["1"] * 4
    spans = {(s.start_frame, s.gap) for s in key_spans(shot)}
    assert spans == {(1, 8), (9, 6), (15, 6)}

    assert run_cli(["generate", str(project_dir), "--all", "--engine", "flow", "-q"]) == 0
    err = capsys.readouterr().err
    assert "skipped frames 9-15: the timing sheet marks no in-betweens there." in err
    shot = open_project(project_dir).shot
    made = sorted((span.start_frame + f.offset, round(f.time, 6)) for span in key_spans(shot)
                  for seg in [shot.segments.get(span.key)] if seg and seg.active_take
                  for f in shot.takes[seg.active_take].frames)
    assert made == [(3, 0.25), (5, 0.5), (7, 0.75), (18, 0.5)]  # exactly the marked frames
    resolved = resolve_timeline(shot)
    assert [f.frame for f in resolved if f.kind == "inbetween" and f.new_drawing] == [3, 5, 7, 18]

    back = tmp_path / "back.xdts"
    assert run_cli(["timing", "export", str(project_dir), str(back)]) == 0
    assert normalized(read_sheet(back)) == normalized(read_sheet(sheet_path))


def test_import_is_one_undoable_step(tmp_path):
    keys = make_keys(tmp_path / "keys")
    assert run_cli(["new", str(tmp_path / "shot"), "--source", str(keys), "-q"]) == 0
    project = open_project(tmp_path / "shot")
    before = project.to_dict()
    plan = plan_import(project.shot, parse_sheet(xdts(two_track_sheet()), "cut12.xdts"))
    assert (plan.inbetweens, len(plan.keys), plan.empties) == (4, 3, 2)
    project.push(plan.command())
    assert project.shot.frame_count == 24 and project.shot.sheet is not None
    assert project.stack.undo_label == "Import timing sheet (A)"
    project.undo()
    assert project.to_dict() == before
    project.redo()
    assert normalized(shot_sheet(project.shot)) == normalized(plan.sheet)


def test_second_track_and_unmatched_names(tmp_path):
    keys = make_keys(tmp_path / "keys", ("A_0001", "A_0002", "B_0001"))
    files = [arg for path in sorted(keys.iterdir()) for arg in ("--source", str(path))]
    assert run_cli(["new", str(tmp_path / "shot"), *files, "-q"]) == 0
    project = open_project(tmp_path / "shot")
    plan = plan_import(project.shot, parse_sheet(xdts(two_track_sheet()), "cut12.xdts"), "B")
    # B_0002 was never drawn: A_0002 is not taken for it
    assert plan.unmatched == {"2": ([7], "the only drawing numbered 2 is of another family ('a'), not of the track 'B'")}
    assert plan.matched == {"1": "d0003"}  # a bare number prefers the track's own prefix
    assert plan.other_tracks == ["A"]
    project.push(plan.command())
    assert [f.label for f in resolve_timeline(project.shot)][:13] == ["1"] * 6 + ["2"] * 6 + ["×"]
    with pytest.raises(Exception, match="no cell track 'C'"):
        plan_import(project.shot, parse_sheet(xdts(two_track_sheet()), "cut12.xdts"), "C")


def test_our_xdts_writer_round_trips():
    rows = [SheetRow(i + 1, d, "", "", "key", "source", "s", 0, "", "") for i, d in
            enumerate(["1001", "1002", "1002", "1003"])]
    sheet = parse_sheet(xdts_text(rows, "walk"), "walk.xdts")
    assert [(e.frame, e.value) for e in sheet.cell_track().entries] == [(0, "1001"), (1, "1002"), (3, "1003")]
    again = parse_sheet(xdts_sheet_text(sheet), "again.xdts")
    assert normalized(again) == normalized(sheet)
    full = parse_sheet(xdts(two_track_sheet()), "cut12.xdts")
    assert normalized(parse_sheet(xdts_sheet_text(full), "x.xdts")) == normalized(full)


def test_csv_layouts_chosen_by_header():
    frame_csv = "Frame,A,B,Dialogue\n1,1,1,Hi\n2,,,\n3,○,x,\n4,,,\n5,2,,Bye\n"
    sheet = parse_sheet(frame_csv.encode(), "cut.csv")
    assert sheet.source_format == "csv-frame"
    a = sheet.cell_track("A")
    assert [(e.frame, e.value) for e in a.entries] == [(0, "1"), (2, "SYMBOL_TICK_1"), (4, "2")]
    assert [(e.frame, e.value) for e in sheet.cell_track("B").entries] == [(0, "1"), (2, "SYMBOL_NULL_CELL")]
    assert [(t.field_id, t.name) for t in sheet.other_tracks] == [(3, "Dialogue")]
    # as TVPaint (and Krita, which writes the same format) lay it out: the image name on every frame it shows
    tvpaint = ('UTF-8, TVPaint, "CSV 1.0"\r\n'
               "Project Name, Width, Height, Frame Count, Layer Count, Frame Rate, Pixel Aspect Ratio, Field Mode\r\n"
               '"bounce", 64, 48, 5, 1, 12.000000, 1.000000, Progressive\r\n'
               '#Layers, "Char"\r\n#Density, 1.000000\r\n#Blending, "Color"\r\n#Visible, 1\r\n'
               '#00000, "frame00001-00000.png"\r\n#00001, "frame00001-00000.png"\r\n'
               '#00002, "frame00001-00002.png"\r\n#00003, ""\r\n#00004, "frame00001-00004.png"\r\n')
    sheet = parse_sheet(tvpaint.encode(), "tv.csv")
    assert (sheet.source_format, sheet.fps, sheet.duration) == ("csv-tvpaint", 12.0, 5)
    assert [(e.frame, e.value) for e in sheet.cell_track("Char").entries] == [
        (0, "frame00001-00000.png"), (2, "frame00001-00002.png"), (3, "SYMBOL_NULL_CELL"), (4, "frame00001-00004.png")]
    with pytest.raises(Exception, match="not a timing sheet this app reads"):
        parse_sheet(b"a,b\n1,2\n", "other.csv")


def test_otio_export_read_by_opentimelineio(tmp_path):
    otio = pytest.importorskip("opentimelineio")
    keys = make_keys(tmp_path / "keys")
    sheet_path = tmp_path / "cut12.xdts"
    sheet_path.write_text(xdts(two_track_sheet()), encoding="utf-8")
    project_dir = tmp_path / "shot"
    assert run_cli(["new", str(project_dir), "--source", str(keys), "--timing", str(sheet_path), "--fps", "12",
                    "-q"]) == 0
    out = tmp_path / "cut12.otio"
    assert run_cli(["timing", "export", str(project_dir), str(out)]) == 0
    timeline = otio.adapters.read_from_file(str(out))
    track = timeline.tracks[0]
    assert track.name == "A" and track.duration().to_frames() == 24 and track.duration().rate == 12
    items = [(type(i).__name__, i.name if isinstance(i, otio.schema.Clip) else "", i.duration().to_frames())
             for i in track]
    assert items == [("Clip", "1", 8), ("Clip", "2", 4), ("Gap", "", 2), ("Clip", "3", 6), ("Clip", "1", 4)]
    assert track[0].media_reference.target_url.endswith("/keys/A_0001.png")
    marks = sorted((int(m.marked_range.start_time.to_frames()), m.name) for m in track.markers)
    assert marks == [(0, "FI"), (2, "Hello!"), (2, "in-between"), (4, "in-between"), (6, "in-between"),
                     (17, "in-between")]


def test_our_csv_sheet_times_a_fresh_project_the_same(tmp_path):
    """Export (PNGs + our CSV + XDTS) from a timed, generated shot; the CSV re-times a new project from the same
    keys with the same cells, keys and in-between frames; the exported XDTS keeps the dialogue."""
    keys = make_keys(tmp_path / "keys")
    sheet_path = tmp_path / "cut12.xdts"
    sheet_path.write_text(xdts(two_track_sheet()), encoding="utf-8")
    first, second = tmp_path / "shot", tmp_path / "again"
    assert run_cli(["new", str(first), "--source", str(keys), "--timing", str(sheet_path), "-q"]) == 0
    assert run_cli(["generate", str(first), "--all", "-q"]) == 0
    assert run_cli(["export", str(first), "--out", str(tmp_path / "out"), "--include-pending"]) == 0
    exported = read_sheet(tmp_path / "out" / "shot.xdts")
    assert [(t.field_id, t.name, [(e.frame, e.values) for e in t.entries]) for t in exported.other_tracks] == [
        (3, "Serif", [(2, ("Hello!",))]), (5, "Camera", [(0, ("FI",))])]
    assert run_cli(["new", str(second), "--source", str(keys), "--timing", str(tmp_path / "out" / "shot.csv"),
                    "-q"]) == 0
    a, b = open_project(first).shot, open_project(second).shot
    def cells(shot):
        return [(shot.drawings[c.drawing_id].label, c.length, shot.drawings[c.drawing_id].is_key) for c in shot.cells]

    assert cells(b) == cells(a) == [("1", 8, True), ("2", 4, True), ("", 2, False), ("3", 6, True), ("1", 4, True)]
    offsets = {(s.start_frame, s.gap): b.segments[s.key].settings.offsets for s in key_spans(b)}
    assert offsets == {(1, 8): [2, 4, 6], (9, 6): [], (15, 6): [3]}


@pytest.mark.parametrize(("entries", "expected"), [
    # Clip Studio's entry before frame 0 starts the track; a hyphen carries on; a repeat is dropped
    ([(-1, "1"), (2, "SYMBOL_HYPHEN"), (3, "1"), (4, "2")], [(0, "1"), (4, "2")]),
    # a null cell at the start, or after another, says nothing new; one at or past the end is dropped
    ([(0, "SYMBOL_NULL_CELL"), (1, "1"), (3, "SYMBOL_NULL_CELL"), (4, "SYMBOL_NULL_CELL"), (6, "SYMBOL_NULL_CELL")],
     [(1, "1"), (3, "SYMBOL_NULL_CELL")]),
    # marks are instructions: each is kept, even two in a row; the same drawing after a mark is a new exposure
    ([(0, "1"), (1, "SYMBOL_TICK_1"), (2, "SYMBOL_TICK_1"), (3, "1"), (4, "SYMBOL_TICK_2")],
     [(0, "1"), (1, "SYMBOL_TICK_1"), (2, "SYMBOL_TICK_1"), (3, "1"), (4, "SYMBOL_TICK_2")]),
    # the last entry at a frame wins (entries out of order)
    ([(3, "2"), (0, "1"), (3, "3")], [(0, "1"), (3, "3")]),
])
def test_cell_track_normal_form(entries, expected):
    from tooncrafter_studio.project.timing_sheet import SheetEntry, normalize_cells

    normal = normalize_cells([SheetEntry(f, (v,)) for f, v in entries], duration=6)
    assert [(e.frame, e.value) for e in normal] == expected


def test_a_second_sheet_replaces_the_first_ones_marks(tmp_path):
    keys = make_keys(tmp_path / "keys")
    assert run_cli(["new", str(tmp_path / "shot"), "--source", str(keys), "-q"]) == 0
    project = open_project(tmp_path / "shot")
    project.push(plan_import(project.shot, parse_sheet(xdts(two_track_sheet()), "cut12.xdts")).command())
    marked = {k: s.settings.offsets for k, s in project.shot.segments.items()}
    assert marked == {("d0001", "d0002"): [2, 4, 6], ("d0002", "d0003"): [], ("d0003", "d0001"): [3]}
    # the second sheet: keys 1 and 3 only, one mark; a recurring pair makes its marks each time
    second = {"timeTables": [{"duration": 12, "timeTableHeaders": [{"fieldId": 0, "names": ["A"]}],
                              "fields": [{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
                                  {"frame": 0, "data": [{"values": ["1"]}]}, {"frame": 1, "data": [{"values": [
                                      "SYMBOL_TICK_1"]}]}, {"frame": 3, "data": [{"values": ["3"]}]},
                                  {"frame": 6, "data": [{"values": ["1"]}]}, {"frame": 7, "data": [{"values": [
                                      "SYMBOL_TICK_1"]}]}, {"frame": 9, "data": [{"values": ["3"]}]}]}]}]}],
              "version": 5}
    plan = plan_import(project.shot, parse_sheet(xdts(second), "second.xdts"))
    assert (plan.inbetweens, plan.marks) == (2, [2, 8])
    project.push(plan.command())
    now = {k: s.settings.offsets for k, s in project.shot.segments.items() if s.settings.offsets is not None}
    assert now == {("d0001", "d0003"): [1], ("d0003", "d0001"): []}
    project.undo()
    assert {k: s.settings.offsets for k, s in project.shot.segments.items()} == marked


def test_info_reports_the_sheet(tmp_path, capsys):
    keys = make_keys(tmp_path / "keys")
    sheet_path = tmp_path / "cut12.xdts"
    sheet_path.write_text(xdts(two_track_sheet()), encoding="utf-8")
    assert run_cli(["new", str(tmp_path / "shot"), "--source", str(keys), "--timing", str(sheet_path), "-q"]) == 0
    capsys.readouterr()
    assert run_cli(["info", str(tmp_path / "shot")]) == 0
    out = capsys.readouterr().out
    assert "timed by sheet 'cut12' (xdts, 24 frames), track 'A'; other tracks kept: B" in out
    assert "dialogue 'Serif': 3: Hello!" in out and "camera work 'Camera': 1: FI" in out
    assert "segment 1-9 (8 frames, linear, flow): 3 in-betweens at +2, +4, +6" in out


def test_names_find_drawings_by_name_or_number(tmp_path):
    from tooncrafter_studio.export.sheet_timing import DrawingIndex

    keys = make_keys(tmp_path / "keys", ("A_0001", "A_0002", "B_0001", "pose", "frame00001-00002"))
    files = [arg for path in sorted(keys.iterdir()) for arg in ("--source", str(path))]
    assert run_cli(["new", str(tmp_path / "shot"), *files, "-q"]) == 0
    shot = open_project(tmp_path / "shot").shot
    by_file = {shot.sources[d.source_id].files[d.source_frame]: d.id for d in shot.drawings.values()}
    index = DrawingIndex(shot)
    for name in ("A1", "a_1", "A0001", "A-001", "A_0001"):
        assert index.find(name, "X") == (by_file["A_0001.png"], ""), name
    assert index.find("1", "A") == (by_file["A_0001.png"], "")  # the track's own family
    assert index.find("0001", "B") == (by_file["B_0001.png"], "")
    assert index.find("POSE", "A") == (by_file["pose.png"], "")
    assert index.find("frame00001-00002.png", "Char") == (by_file["frame00001-00002.png"], "")  # TVPaint names
    assert index.find("2", "B") == (None, "drawings of 2 families (a, frame00001) are numbered 2, none of the "
                                          "track 'B'")  # never guessed: A_0002 is not B's
    assert index.find("1", "C") == (None, "drawings of 2 families (a, b) are numbered 1, none of the track 'C'")
    assert index.find("C1", "C") == (None, "no drawing has that name or number")


def test_xdts_details_from_other_writers():
    """Clip Studio's frame before 0, a track without a header name, two tracks of one name, a second time
    table, and a field this app does not know: all read, and said."""
    document = two_track_sheet()
    table = document["timeTables"][0]
    table["timeTableHeaders"][0]["names"] = ["A", "A"]
    table["fields"][0]["tracks"].append({"trackNo": 2, "frames": [{"frame": -1, "data": [{"values": ["9"]}]}]})
    table["fields"].append({"fieldId": 7, "tracks": [{"trackNo": 0, "frames": [{"frame": 1, "data": [
        {"values": ["x"]}]}]}]})
    document["timeTables"].append(dict(table))
    sheet = parse_sheet(xdts(document), "csp.xdts")
    assert [t.name for t in sheet.cell_tracks] == ["A", "A (2)", "Track 3"]
    assert [(e.frame, e.value) for e in sheet.cell_track("Track 3").entries] == [(0, "9")]
    assert any("2 time tables; only the first was read" in n for n in sheet.notes)
    assert any("fields 7" in n for n in sheet.notes) and any("'A (2)'" in n for n in sheet.notes)
    assert normalized(parse_sheet(xdts_sheet_text(sheet), "again.xdts")) == normalized(sheet)


def test_the_largest_sheet_we_write_is_one_we_read():
    from tooncrafter_studio.project.timing_sheet import (
        MAX_SHEET_FILE_BYTES,
        Sheet,
        SheetEntry,
        SheetTrack,
    )

    frames = 100_000  # a shot at its frame limit, a new drawing on every frame
    track = SheetTrack(0, 0, "A", tuple(SheetEntry(f, (str(f % 2 + 1),)) for f in range(frames)))
    text = xdts_sheet_text(Sheet(frames, (track,), "long"))
    assert len(text.encode()) < MAX_SHEET_FILE_BYTES
    assert parse_sheet(text, "long.xdts").cell_track().entries == track.entries
