"""Start-up (sample shot, last project, --project), settings and the one command registry."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QKeySequence
from qt_helpers import PATIENCE_MS

from tooncrafter_studio.core.paths import resources_dir
from tooncrafter_studio.qt.actions import COMMANDS, MENUS, ActionRegistry
from tooncrafter_studio.qt.project_files import FIRST_RUN_HINT


def test_first_start_opens_the_sample_shot_with_a_hint(qtbot, window):
    if not (resources_dir() / "sample_shot" / "project.json").exists():
        pytest.skip("the sample shot is not in this checkout")
    window.files.open_startup(None)
    project = window.session.project
    assert project is not None and project.folder.name == "sample_shot"
    assert "resources" not in str(project.folder)  # a copy the animator may edit, not the installed one
    assert window.viewer.hint == FIRST_RUN_HINT and window.timeline.frame_count > 0
    window.viewer.grab()


def test_start_reopens_the_last_project(qtbot, window, project_folder):
    window.settings.last_project = str(project_folder)
    window.files.open_startup(None)
    assert window.session.project.folder == project_folder.resolve()
    assert window.viewer.hint == ""


def test_project_argument_wins(qtbot, window, project_folder, tmp_path):
    window.settings.last_project = str(tmp_path / "gone")
    window.files.open_startup(str(project_folder))
    assert window.session.project.folder == project_folder.resolve()


def test_default_shortcuts_do_not_clash_and_every_command_is_in_a_menu(qtbot, window):
    registry = window.actions
    assert registry.conflicts() == {}
    menu_texts = {a.text() for m in registry.menus.values() for a in m.actions()}
    for spec in COMMANDS:
        assert spec.menu in MENUS
        assert registry[spec.id].text() in menu_texts or spec.id in ("undo", "redo")


def test_shortcut_overrides_apply_to_menus_and_keys(qtbot):
    from PySide6.QtWidgets import QWidget

    host = QWidget()
    qtbot.addWidget(host)
    registry = ActionRegistry(host, {"accept_frame": "Y", "reject_frame": ""})
    assert registry["accept_frame"].shortcut() == QKeySequence("Y")
    assert registry["reject_frame"].shortcuts() == []
    assert "(Y)" in registry["accept_frame"].toolTip()
    registry.apply_shortcuts({})
    assert registry["accept_frame"].shortcut() == QKeySequence("A")


def test_settings_dialog_round_trip(qtbot, window):
    dialog = window.dialogs.settings_dialog()
    dialog.onion_before.setValue(4)
    dialog.autosave.setValue(0)
    row = next(r for r in range(dialog.shortcuts.rowCount())
               if dialog.shortcuts.item(r, 0).data(0x0100) == "accept_frame")
    dialog.shortcuts.item(row, 1).setText("Ctrl+Return")
    assert dialog.conflicts.text() == ""
    dialog.shortcuts.item(row, 1).setText("X")
    assert "Conflicts" in dialog.conflicts.text()
    dialog.shortcuts.item(row, 1).setText("Ctrl+Return")
    dialog.accept()
    assert window.settings.onion_skin_before == 4 and window.settings.autosave_interval_s == 0
    assert not window.files.autosave_timer.isActive()
    assert window.actions["accept_frame"].shortcut() == QKeySequence("Ctrl+Return")


def test_onion_skin_layers_follow_the_settings(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.settings.onion_skin_before = 2
    window.settings.onion_skin_after = 1
    window.view.set_current_frame(9)
    window.actions["onion_skin"].setChecked(True)
    qtbot.waitUntil(lambda: len(window.viewer.layers) == 3, timeout=PATIENCE_MS)
    opacities = [round(layer.opacity, 3) for layer in window.viewer.layers]
    nearest = window.settings.onion_skin_opacity
    assert opacities == [round(nearest, 3), round(nearest * 0.6, 3), round(nearest, 3)]
    window.actions["light_table"].setChecked(True)
    qtbot.waitUntil(lambda: len(window.viewer.layers) == 5, timeout=PATIENCE_MS)
    assert "LIGHT TABLE" in window.viewer.badge


def test_ab_flip_shows_the_nearest_key(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.view.set_current_frame(3)
    window.actions["ab_flip"].setChecked(True)
    assert window.viewer.badge == "B: start key"
    window.view.set_current_frame(7)
    assert window.viewer.badge == "B: end key"
    window.actions["ab_flip"].setChecked(False)
    assert window.viewer.badge == ""
