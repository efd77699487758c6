"""Start-up with a damaged last project or a damaged recovery copy: the window opens and says why."""

from __future__ import annotations

from tooncrafter_studio.project.project import AUTOSAVE_DIR, PROJECT_FILE


def _deep_json(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


def test_damaged_last_project_opens_empty_with_the_error(qtbot, window, project_folder):
    (project_folder / PROJECT_FILE).write_text(_deep_json())
    window.settings.last_project = str(project_folder)
    window.files.open_startup(None)
    assert window.session.project is None  # neither the damaged project nor the sample instead
    assert window.problem_bar.isVisible()
    text = window.problem_bar.label.text()
    assert str(project_folder / PROJECT_FILE) in text and "damaged" in text and "\n" not in text
    assert window.problem_bar.open_other_button.text() == "Open another project…"
    assert str(project_folder / PROJECT_FILE) in window.viewer.hint
    window.viewer.grab()


def test_huge_integer_in_the_last_project_is_reported(qtbot, window, project_folder):
    text = (project_folder / PROJECT_FILE).read_text().replace('"fps": 24.0', '"fps": ' + "9" * 5000, 1)
    (project_folder / PROJECT_FILE).write_text(text)
    window.files.open_startup(str(project_folder))
    assert window.session.project is None and window.problem_bar.isVisible()
    assert "damaged" in window.problem_bar.label.text()


def test_damaged_recovery_copy_is_set_aside_and_the_project_opens(qtbot, window, project_folder):
    autosave = project_folder / AUTOSAVE_DIR
    autosave.mkdir()
    (autosave / PROJECT_FILE).write_text('{"schema_version": 1, "shot": ' + _deep_json() + "}")
    window.settings.last_project = str(project_folder)
    window.files.open_startup(None)
    assert window.session.project is not None
    assert window.session.project.folder == project_folder.resolve()
    assert not window.problem_bar.isVisible()
    assert not (autosave / PROJECT_FILE).exists()
    kept = list(autosave.glob("project.damaged-*.json"))
    assert len(kept) == 1 and kept[0].read_text().endswith("]}")  # renamed, not deleted
    assert "set aside" in window.statusBar().currentMessage()


def test_opening_another_project_clears_the_problem(qtbot, window, project_folder, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(project_folder, other)
    (project_folder / PROJECT_FILE).write_text("{")
    window.files.open_startup(str(project_folder))
    assert window.problem_bar.isVisible()
    assert window.files.open_project(other)
    assert not window.problem_bar.isVisible() and window.viewer.hint == ""


def test_missing_drawings_are_reported_and_located_undoably(qtbot, window, project_folder, tmp_path):
    import shutil

    shutil.move(project_folder / "src", tmp_path / "moved")
    assert window.files.open_project(project_folder)
    assert window.problem_bar.isVisible() and "9 drawings are missing" in window.problem_bar.label.text()
    assert window.problem_bar.locate_button.isVisible() and not window.problem_bar.open_other_button.isVisible()
    assert window.files.locate_missing_drawings(tmp_path) == 9
    assert not window.problem_bar.isVisible()
    assert window.session.modified
    assert window.actions["undo"].text() == "&Undo Locate Missing Drawings"
    assert sorted(p.name for p in (tmp_path / "moved").iterdir())[0] == "frame.0001.png"  # left in place


def test_project_held_by_another_program_is_not_opened_twice(qtbot, window, project_folder):
    import json

    from tooncrafter_studio.project.ownership import LOCK_FILE

    (project_folder / LOCK_FILE).write_text(json.dumps({"host": "render-node-7", "pid": 4242, "what": "the command "
                                                        "'tooncrafter-studio generate'", "since": "now"}))
    window.files.open_startup(str(project_folder))
    assert window.session.project is None
    assert "is open in the command 'tooncrafter-studio generate' on render-node-7" in window.problem_bar.label.text()
    (project_folder / LOCK_FILE).unlink()
    assert window.files.open_project(project_folder)
    assert json.loads((project_folder / LOCK_FILE).read_text())["what"] == "the ToonCrafter Studio app"


def test_an_unexpected_error_while_opening_keeps_the_window_and_names_the_log(qtbot, window, project_folder,
                                                                              monkeypatch):
    from tooncrafter_studio.project.project import Project

    def broken(folder):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Project, "open", classmethod(lambda cls, folder: broken(folder)))
    window.files.open_startup(str(project_folder))
    assert window.session.project is None and window.problem_bar.isVisible()
    text = window.problem_bar.label.text()
    assert "RecursionError" in text and "this is a bug" in text and "studio.log" in text


def test_undoing_the_relink_shows_the_missing_drawings_again(qtbot, window, project_folder, tmp_path):
    import shutil

    shutil.move(project_folder / "src", tmp_path / "moved")
    assert window.files.open_project(project_folder)
    assert window.files.locate_missing_drawings(tmp_path) == 9 and not window.problem_bar.isVisible()
    window.actions["undo"].trigger()
    assert window.problem_bar.isVisible() and "9 drawings are missing" in window.problem_bar.label.text()
    window.actions["redo"].trigger()
    assert not window.problem_bar.isVisible()
