"""File ▸ Import Timing Sheet…: the preview says what changes, Import is one undoable step, and the
timeline shows the sheet's marks and its dialogue / camera-work rows read-only."""

from __future__ import annotations

import json

from tooncrafter_studio.project.resolve import resolve_timeline
from tooncrafter_studio.qt.dialogs.timing_sheet import TimingSheetDialog

IDENTIFIER = "exchangeDigitalTimeSheet Save Data"


def _entry(frame: int, value: str) -> dict:
    return {"data": [{"id": 0, "values": [value]}], "frame": frame}


def write_sheet(path):
    a = [_entry(0, "1"), _entry(2, "SYMBOL_TICK_1"), _entry(4, "SYMBOL_TICK_1"), _entry(6, "2"),
         _entry(9, "SYMBOL_TICK_2"), _entry(10, "SYMBOL_NULL_CELL"), _entry(12, "3"), _entry(16, "SYMBOL_NULL_CELL")]
    table = {"duration": 16, "name": "c1",
             "timeTableHeaders": [{"fieldId": 0, "names": ["A", "B"]}, {"fieldId": 3, "names": ["Serif"]}],
             "fields": [{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": a},
                                                  {"trackNo": 1, "frames": [_entry(0, "7")]}]},
                        {"fieldId": 3, "tracks": [{"trackNo": 0, "frames": [_entry(1, "Hey!"), _entry(5, "Wait")]}]}]}
    path.write_text(IDENTIFIER + "\n" + json.dumps({"timeTables": [table], "version": 5}), encoding="utf-8")
    return path


def test_import_timing_sheet_from_the_file_menu(qtbot, window, project_folder, tmp_path, monkeypatch):
    window.files.open_project(project_folder)
    before_frames = window.session.shot.frame_count
    sheet = write_sheet(tmp_path / "c1.xdts")
    dialog = window.dialogs.import_timing_dialog(str(sheet))
    assert isinstance(dialog, TimingSheetDialog)
    assert [dialog.track.itemText(i) for i in range(dialog.track.count())] == ["A", "B"]
    text = dialog.preview.toPlainText()
    assert f"Frames: {before_frames} → 16" in text
    assert "In-between frames to generate: 2" in text and "In-betweens on frames 3, 5." in text
    assert "Other cell tracks not imported (kept in the sheet): B." in text
    assert "Dialogue 'Serif' (read-only, kept): 2: Hey!, 6: Wait." in text
    assert "Reverse-sheet marks on frames 10" in text
    assert dialog.ok_button.isEnabled()
    dialog.accept()
    shot = window.session.shot
    assert shot.frame_count == 16 and shot.sheet is not None
    assert [f.label for f in resolve_timeline(shot)] == ["1"] * 6 + ["2"] * 4 + ["×"] * 2 + ["3"] * 4
    assert window.timeline.sheet_marks == {3: "○", 5: "○", 10: "●"}
    assert window.timeline.note_rows == [("Dialogue: Serif", {2: "Hey!", 6: "Wait"})]
    asked = []
    monkeypatch.setattr(window.generation, "generate", lambda spans, **kw: asked.append(spans))
    window.actions.trigger("generate_all")  # only the pair the sheet marks in-betweens for
    assert [(s.start_frame, s.gap) for s in asked[0]] == [(1, 6)]
    assert window.session.project.stack.undo_label == "Import timing sheet (A)"
    window.session.undo()
    assert window.session.shot.frame_count == before_frames and window.session.shot.sheet is None
    assert window.timeline.sheet_marks == {} and window.timeline.note_rows == []


def test_a_bad_sheet_is_said_in_the_preview(qtbot, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    bad = tmp_path / "bad.xdts"
    bad.write_text(IDENTIFIER + "\n{", encoding="utf-8")
    dialog = window.dialogs.import_timing_dialog(str(bad))
    assert "bad.xdts: damaged XDTS: invalid JSON" in dialog.preview.toPlainText()
    assert not dialog.ok_button.isEnabled()
    dialog.reject()
    assert window.session.project.stack.undo_label == ""


def test_the_file_menu_opens_it(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.actions.trigger("import_timing")
    dialog = window.findChild(TimingSheetDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.preview.toPlainText() == "Choose an XDTS or CSV timing sheet." and not dialog.ok_button.isEnabled()
    assert "Import Timing Sheet" in window.actions["import_timing"].text().replace("&", "")
    dialog.reject()


def test_generate_all_on_a_sheet_without_marks_says_why(qtbot, window, project_folder, tmp_path):
    """Seen in the studio: Shift+G after importing a sheet whose key pairs have no ○ said "Select a key pair
    first: set keys with K…", hiding the real reason the app had just given."""
    window.files.open_project(project_folder)
    table = {"duration": 16, "name": "c2", "timeTableHeaders": [{"fieldId": 0, "names": ["A"]}],
             "fields": [{"fieldId": 0, "tracks": [{"trackNo": 0, "frames": [
                 _entry(0, "1"), _entry(6, "2"), _entry(12, "3")]}]}]}
    sheet = tmp_path / "c2.xdts"
    sheet.write_text(IDENTIFIER + "\n" + json.dumps({"timeTables": [table], "version": 5}), encoding="utf-8")
    window.dialogs.import_timing_dialog(str(sheet)).accept()
    messages: list[str] = []
    window.prompts.shown.connect(messages.append)
    window.actions.trigger("generate_all")
    assert messages and "the timing sheet marks no in-betweens" in messages[-1]
    assert not any("Select a key pair" in m for m in messages)
    assert not window.worker.busy
