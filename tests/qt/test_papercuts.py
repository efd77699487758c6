"""The papercuts of the last walk through the studio (issue 22), each as the user meets it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QUrl
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.qt.app import FileOpenEvents
from tooncrafter_studio.qt.layout_store import default_geometry, fit_on_screen, layout_path, screen_key
from tooncrafter_studio.qt.main_window import MainWindow

# ------------------------------------------------------------------ 1. the window fits the screen


def _inside(window, widget) -> bool:
    top_left = widget.mapTo(window, QPoint(0, 0))
    return window.rect().contains(QRect(top_left, widget.size()))


def test_the_window_opens_inside_the_available_screen(qtbot, window):
    available = window.screen().availableGeometry()
    assert available.contains(window.geometry())  # not 1400x900 on this 800x800 offscreen screen


def test_on_a_1280x720_screen_the_sheet_and_the_inspector_are_on_screen(qtbot, window):
    available = QRect(0, 0, 1280, 720 - 32)  # a 720p panel with a task bar
    assert default_geometry(available).width() <= 1280 and default_geometry(available).height() <= 688
    fit_on_screen(window, available)
    qtbot.waitUntil(lambda: window.height() <= 688, timeout=PATIENCE_MS)
    for name in ("timeline", "inspector", "takes", "jobs"):
        dock = window.docks[name]
        assert dock.isVisible() and _inside(window, dock), name
    assert window.inspector.visibleRegion().boundingRect().height() > 100  # readable, scrolls beyond


def test_the_geometry_is_remembered_per_screen(qtbot, monkeypatch):
    first = MainWindow(Settings(autosave_interval_s=0), persist_settings=True)
    first.prompts.ask_unsaved = lambda: "discard"
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.resize(640, 480)
    qtbot.waitUntil(lambda: first.width() == 640, timeout=PATIENCE_MS)
    assert first.close()
    saved = layout_path().read_text()
    assert screen_key(first.screen()) in saved

    # the same screen: the size comes back
    second = MainWindow(Settings(autosave_interval_s=0), persist_settings=True)
    qtbot.addWidget(second)
    assert second.width() == 640
    second.shutdown()

    # another screen (here: the same one under another name) opens fitted, not at 640 wide
    monkeypatch.setattr("tooncrafter_studio.qt.layout_store.screen_key", lambda screen: "another-1920x1080")
    third = MainWindow(Settings(autosave_interval_s=0), persist_settings=True)
    qtbot.addWidget(third)
    assert third.width() == default_geometry(third.screen().availableGeometry()).width() != 640
    third.shutdown()


# ------------------------------------------------------------------ 2. opening a project by path


def test_the_app_opens_the_project_it_was_given_as_project_json(qtbot, window, project_folder):
    window.files.open_startup(str(project_folder / "project.json"))
    assert window.session.project is not None and window.session.project.folder == project_folder.resolve()


def test_a_project_opened_from_the_finder_opens_in_the_window(qtbot, window, project_folder):
    opener = FileOpenEvents(window, window)
    event = QFileOpenEvent(QUrl.fromLocalFile(str(project_folder / "project.json")))
    assert event.type() == QEvent.Type.FileOpen
    assert opener.eventFilter(QApplication.instance(), event)
    assert window.session.project is not None and window.session.project.folder == project_folder.resolve()


# ------------------------------------------------------------------ 3. counts that cannot fit


def test_the_inspector_refuses_more_inbetweens_than_frames_and_says_why(qtbot, window, project_folder):
    window.files.open_project(project_folder)  # keys 8 frames apart: at most 7 in-betweens
    inspector = window.inspector
    span = window.session.spans()[0]
    assert span.gap == 8 and inspector.span == span
    assert inspector.count.maximum() == 7
    inspector.count.lineEdit().selectAll()
    qtbot.keyClicks(inspector.count, "120")
    inspector.count.interpretText()
    assert inspector.settings().count in (None, 1)  # "1" was typed before "120" stopped being valid
    inspector.count.setValue(120)  # as the arrows or a wheel would: stops at 7
    assert inspector.settings().count == 7
    assert "at most 7" in inspector.count_note.text().lower() and inspector.count_note.isVisible()


def test_a_saved_count_that_does_not_fit_shows_the_reason(qtbot, window, project_folder):
    from tooncrafter_studio.project.commands import SetSegmentSettings

    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, count=120))  # e.g. frames deleted since
    assert window.inspector.count.value() == 120
    assert "120 in-betweens do not fit" in window.inspector.count_note.text()


# ------------------------------------------------------------------ 4. a time estimate only where it applies


def test_no_gpu_time_estimate_for_the_flow_engine_or_without_a_gpu(qtbot, window, project_folder):
    from qt_helpers import as_if_probed

    from tooncrafter_studio.engines.base import ProbeResult
    from tooncrafter_studio.project.commands import SetSegmentSettings

    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    no_gpu = ProbeResult(False, "No CUDA GPU is available here (PyTorch sees none).")
    as_if_probed(qtbot, window, flow=ProbeResult(True, ""), tooncrafter=no_gpu)
    assert window.inspector.settings().engine == "flow"
    assert window.inspector.time_estimate.text() == ""
    window.session.push(SetSegmentSettings(span.key, engine="tooncrafter"))
    assert window.inspector.time_estimate.text() == ""  # no GPU here: no CUDA figure
    as_if_probed(qtbot, window, tooncrafter=ProbeResult(True, "CUDA, 20.0 GB free of 24.0 GB, high memory mode"))
    assert "GPU (CUDA)" in window.inspector.time_estimate.text()


# ------------------------------------------------------------------ 5. sketches the engine will not use


def test_a_sketch_on_a_flow_segment_says_where_it_is_that_flow_ignores_it(qtbot, window, project_folder, tmp_path):
    import cv2
    import numpy as np

    sketch = np.full((48, 64, 3), 255, np.uint8)
    cv2.line(sketch, (30, 4), (30, 44), (0, 0, 0), 2)
    path = tmp_path / "breakdown.png"
    cv2.imwrite(str(path), sketch)
    messages: list[str] = []
    window.prompts.shown.connect(messages.append)
    window.files.open_project(project_folder)
    assert window.inspector.settings().engine == "flow"
    assert not window.inspector.sketch_note.isVisible()
    window.editing.place_sketch(5, str(path))  # what a drop on the frame-5 cell does
    assert "ignores sketches" in messages[-1] and "ToonCrafter" in messages[-1]
    assert window.inspector.sketch_note.isVisible() and "ignores sketches" in window.inspector.sketch_note.text()
    window.actions["sketch_overlay"].setChecked(True)
    window.view.set_current_frame(5)
    assert "ignores" in window.viewer.badge


# ------------------------------------------------------------------ 6. the welcome banner


def _first_run(qtbot, window):
    window.files.open_startup(None)  # a first run: the sample shot with the welcome banner
    assert window.viewer.hint and window.files.first_run_hint
    qtbot.waitUntil(lambda: window.viewer.image is not None, timeout=PATIENCE_MS)


def test_the_welcome_banner_never_covers_the_picture(qtbot, window):
    _first_run(qtbot, window)
    banner, picture = window.viewer.hint_rect(), window.viewer.image_rect()
    assert not banner.isEmpty() and not banner.intersects(picture)
    window.viewer.grab()  # paints with the banner


def test_the_welcome_banner_leaves_at_the_first_edit(qtbot, window):
    _first_run(qtbot, window)
    window.editing.set_exposure(2)  # any first piece of work (a key, a take, a review)
    assert window.viewer.hint == "" and window.viewer.hint_rect().isEmpty()


def test_the_welcome_banner_closes_with_its_close_box(qtbot, window):
    from PySide6.QtCore import Qt

    _first_run(qtbot, window)
    qtbot.mouseClick(window.viewer, Qt.MouseButton.LeftButton, pos=window.viewer.hint_close_rect().center().toPoint())
    assert window.viewer.hint == "" and window.files.first_run_hint == ""


# ------------------------------------------------------------------ 7. a reviewed take stays active


def test_generating_again_keeps_the_reviewed_take_and_offers_the_new_one_beside_it(qtbot, window, project_folder):
    from engines_for_tests import VariantEngine
    from PySide6.QtCore import Qt

    from tooncrafter_studio.engines.registry import register_engine, unregister_engine
    from tooncrafter_studio.project.commands import SetSegmentSettings
    from tooncrafter_studio.project.document import ReviewStatus

    register_engine(VariantEngine.id, VariantEngine)
    try:
        messages: list[str] = []
        window.prompts.shown.connect(messages.append)
        window.files.open_project(project_folder)
        span = window.session.spans()[0]
        window.session.push(SetSegmentSettings(span.key, engine=VariantEngine.id))
        qtbot.keyClick(window.timeline, Qt.Key.Key_G)
        qtbot.waitUntil(lambda: len(window.session.shot.takes) == 1, timeout=PATIENCE_MS)
        segment = window.session.shot.segments[span.key]
        reviewed = segment.active_take
        window.view.set_current_frame(3)
        qtbot.keyClick(window.timeline, Qt.Key.Key_A)  # accept one in-between: the take is reviewed
        assert window.session.shot.takes[reviewed].frames[0].status == ReviewStatus.ACCEPTED

        qtbot.keyClick(window.timeline, Qt.Key.Key_G)  # G again on the reviewed pair
        qtbot.waitUntil(lambda: len(window.session.shot.takes) == 2, timeout=PATIENCE_MS)
        qtbot.waitUntil(lambda: window.takes.compare_take is not None, timeout=PATIENCE_MS)
        new = next(t for t in segment.take_ids if t != reviewed)
        assert segment.active_take == reviewed  # still what shows and exports
        assert window.session.frames()[2].take_id == reviewed
        assert window.takes.compare_take == new  # beside it: selected, the B side of A/B flip
        assert any("stays active" in m for m in messages)

        window.takes.set_active(new)  # the animator chooses (double-click or ])
        assert segment.active_take == new
    finally:
        unregister_engine(VariantEngine.id)


# ------------------------------------------------------------------ 8. exporting with missing drawings


def test_export_with_missing_drawings_points_to_locate_and_then_works(qtbot, window, project_folder, tmp_path,
                                                                       monkeypatch):
    from PySide6.QtCore import Qt

    moved = tmp_path / "moved"
    (project_folder / "src").rename(moved)  # the drawings' folder was moved away
    window.files.open_project(project_folder)
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    assert dialog.start() is None  # refused before anything is written
    assert "missing" in dialog.status.text() and "Locate Missing Drawings" in dialog.status.text()
    assert dialog.locate_button.isVisible() and not (tmp_path / "out").exists()

    monkeypatch.setattr("tooncrafter_studio.qt.project_files.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(moved))
    qtbot.mouseClick(dialog.locate_button, Qt.MouseButton.LeftButton)
    assert not dialog.locate_button.isVisible()
    task = dialog.start()
    assert task is not None
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=PATIENCE_MS)
    assert len(dialog.report.files) == window.timeline.frame_count


# ------------------------------------------------------------------ 9. one numbering per sheet


def test_a_nuke_export_numbers_the_sheet_like_its_files(qtbot, window, project_folder, tmp_path):
    from tooncrafter_studio.export import parse_csv

    window.files.open_project(project_folder)
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.preset.setCurrentIndex(dialog.preset.findData("nuke"))
    dialog.timing_sheet.setCurrentIndex(dialog.timing_sheet.findData("csv"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=PATIENCE_MS)
    rows = parse_csv(next((tmp_path / "out").glob("*.csv")).read_text(encoding="utf-8"))
    assert rows[0]["frame"] == "1001" and rows[0]["file"].endswith(".1001.png")
    assert [int(r["frame"]) for r in rows] == list(range(1001, 1001 + window.timeline.frame_count))
    assert all(r["file"].endswith(f".{r['frame']}.png") for r in rows)


# ------------------------------------------------------------------ 10. menu sections keep pairs together


def _sections(menu) -> list[list[str]]:
    sections: list[list[str]] = [[]]
    for action in menu.actions():
        if action.isSeparator():
            sections.append([])
        else:
            sections[-1].append(action.text().replace("&", ""))
    return sections


def test_menu_separators_never_split_a_pair(qtbot, window):
    pairs = [("View", "Previous Frame", "Next Frame"), ("View", "Previous Drawing", "Next Drawing"),
             ("View", "First Frame", "Last Frame"), ("View", "Zoom In", "Zoom Out"),
             ("View", "Zoom to Fit", "Zoom 100 %"), ("View", "Onion Skin", "Light Table"),
             ("Review", "Next Pending Frame", "Previous Pending Frame"), ("Review", "Next Take", "Previous Take"),
             ("Review", "Accept Frame", "Reject Frame"), ("Review", "Accept Whole Take", "Reject Whole Take"),
             ("Timeline", "Set Key", "Remove Key"), ("Timeline", "Zoom Timeline In", "Zoom Timeline Out"),
             ("File", "Open Project…", "Open Recent"), ("File", "Save", "Save As…"), ("Edit", "Undo", "Redo")]
    for menu_name, first, second in pairs:
        sections = _sections(window.actions.menus[menu_name])
        assert any(first in s and second in s for s in sections), (menu_name, first, second, sections)
    for menu in window.actions.menus.values():  # no empty sections: no doubled or trailing separators
        assert all(_sections(menu)), _sections(menu)
