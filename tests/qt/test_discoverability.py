"""Finding things without the manual: shortcut sheet, About, closed panels, badges, the pattern
dialog, the spacing chart and local times (issue 11, item 6)."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt

from tooncrafter_studio import __version__
from tooncrafter_studio.qt.actions import COMMANDS, about_text, shortcut_sheet_html
from tooncrafter_studio.qt.dialogs.pattern import PatternDialog, default_project_folder
from tooncrafter_studio.qt.panels.inspector import SPACING_LABELS
from tooncrafter_studio.qt.project_files import local_time


def test_shortcut_sheet_lists_every_command_with_its_keys(qtbot, window):
    html = shortcut_sheet_html(window.actions)
    for spec in COMMANDS:
        assert spec.text.replace("&", "").rstrip("…") in html
    assert "Left" in html and "Right" in html and "<b>F1</b>" in html
    window.settings.shortcuts = {"accept_frame": "Ctrl+Alt+A"}
    window.actions.apply_shortcuts(window.settings.shortcuts)
    assert "Ctrl+Alt+A" in shortcut_sheet_html(window.actions)  # from the registry, never stale
    dialog = window.dialogs.shortcut_sheet()
    assert dialog.isVisible()
    dialog.close()
    assert window.actions["prev_frame"].shortcut().toString() == "Left"  # the menu shows Left/Right


def test_about_names_the_version():
    assert __version__ in about_text()


def test_a_closed_panel_comes_back_from_the_view_menu(qtbot, window):
    dock = window.docks["takes"]
    dock.close()
    assert not dock.isVisible()
    panels = next(a.menu() for a in window.actions.menus["View"].actions() if a.menu() is not None)
    toggle = next(a for a in panels.actions() if a.text() == "Takes")
    toggle.trigger()
    assert dock.isVisible()


def test_onion_skin_has_a_badge_like_the_others(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.actions["onion_skin"].setChecked(True)
    assert window.viewer.badge == "ONION SKIN"
    window.actions["onion_skin"].setChecked(False)
    assert window.viewer.badge == ""


def test_pattern_dialog_has_browse_and_hold_detection(qtbot, window, monkeypatch, tmp_path):
    dialog = window.files.new_from_pattern_dialog()
    assert isinstance(dialog, PatternDialog) and dialog.detect_holds.isChecked()
    assert not dialog.ok_button.isEnabled()
    picked = str(tmp_path / "walk.0007.png")
    monkeypatch.setattr("tooncrafter_studio.qt.dialogs.pattern.QFileDialog.getOpenFileName",
                        lambda *a, **k: (picked, ""))
    dialog._browse_pattern()  # noqa: SLF001  (the Browse… button)
    assert dialog.pattern.text() == picked and dialog.folder.text() == str(tmp_path / "walk_project")
    dialog.detect_holds.setChecked(False)
    calls = []
    monkeypatch.setattr(window.files, "create_project", lambda *a, **k: calls.append((a, k)))
    dialog.accept()
    assert calls == [((picked, str(tmp_path / "walk_project")), {"detect_holds": False})]
    assert default_project_folder("/s/frame_%04d.png") == "/s/frame_project"


def test_spacing_is_named_as_animators_say_it_and_the_chart_is_usable(qtbot, window, project_folder):
    names = [label.lower() for label in SPACING_LABELS.values()]
    assert any("slow in" in n for n in names) and any("slow out" in n for n in names)
    assert not any(n.startswith("ease") for n in names)
    window.files.open_project(project_folder)
    assert window.inspector.chart.height() >= 50 and window.inspector.chart_hint.text()


def test_recovery_times_are_local():
    stamp = datetime(2026, 12, 3, 10, 42, tzinfo=UTC)
    assert local_time(stamp.isoformat()) == stamp.astimezone().strftime("%Y-%m-%d %H:%M")
    assert local_time("not a time") == "not a time"


def test_keys_step_frames_from_the_keyboard(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    qtbot.keyClick(window.timeline, Qt.Key.Key_Right)
    assert window.view.current_frame == 2
