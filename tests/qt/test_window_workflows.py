"""User workflows through the real main window (offscreen): open, key, time, generate, review,
undo/redo, export, cancel, recover, unavailable engines, closing with a job running."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from engines_for_tests import FastSlowEngine, MissingModelEngine, SlowEngine, StepGate, VariantEngine
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from qt_helpers import PATIENCE_MS
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.project.commands import SetSegmentSettings
from tooncrafter_studio.project.document import ReviewStatus
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.qt.worker import running_threads


@pytest.fixture
def test_engines():
    for engine in (SlowEngine, FastSlowEngine, MissingModelEngine, VariantEngine):
        register_engine(engine.id, engine)
    yield
    for engine in (SlowEngine, FastSlowEngine, MissingModelEngine, VariantEngine):
        unregister_engine(engine.id)


def press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window.timeline, key, modifier)


def statuses(window):
    return [f.status for f in window.session.frames()]


def wait_for_probes(qtbot, window):
    from tooncrafter_studio.engines.registry import engine_ids

    qtbot.waitUntil(lambda: set(window.generation.probes) >= set(engine_ids()), timeout=PATIENCE_MS)


def wait_for_take(qtbot, window, count=1, timeout=PATIENCE_MS):
    qtbot.waitUntil(lambda: len(window.session.shot.takes) >= count, timeout=timeout)


def test_open_shows_the_sheet_keys_holds_and_a_clean_title(qtbot, window, project_folder):
    assert window.files.open_project(project_folder)
    assert window.timeline.frame_count == 18
    runs = window.timeline.runs
    assert [r.length for r in runs] == [2] * 9  # holds drawn as extended cells
    assert [r.first for r in runs if r.frame.kind == "key"] == [1, 9, 17]
    assert str(project_folder.name) in window.windowTitle() and not window.isWindowModified()
    spans = window.session.spans()
    assert window.view.current_span() == spans[0]  # the first key pair is selected for the inspector
    assert "Keys 0001 → 0005" in window.inspector.title.text()
    assert "3 in-betweens" in window.inspector.title.text()


def test_keyboard_edits_are_undoable(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    shot = window.session.shot
    window.timeline.set_selection(5, 5)
    window.view.set_current_frame(5)  # drawing 3 (d2)
    press(qtbot, window, Qt.Key.Key_K)
    assert shot.drawings["d2"].is_key and window.isWindowModified()
    assert len(window.session.spans()) == 3
    press(qtbot, window, Qt.Key.Key_3)  # on 3s
    assert shot.cells[2].length == 3 and window.timeline.frame_count == 19
    press(qtbot, window, Qt.Key.Key_Insert)
    assert shot.cells[2].length == 4 and window.timeline.frame_count == 20
    window.timeline.set_selection(1, 2)
    press(qtbot, window, Qt.Key.Key_Delete)
    assert window.timeline.frame_count == 18 and shot.cells[0].drawing_id == "d1"
    press(qtbot, window, Qt.Key.Key_K, Qt.KeyboardModifier.ShiftModifier)  # remove key at frame 1 (d1)
    for _ in range(5):
        press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [c.length for c in shot.cells] == [2] * 9 and not shot.drawings["d2"].is_key
    assert not window.isWindowModified()
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert shot.drawings["d2"].is_key
    assert window.isWindowModified()


def test_generate_review_with_keyboard_undo_and_export(qtbot, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    press(qtbot, window, Qt.Key.Key_G)  # generate the selected key pair with the default flow engine
    wait_for_take(qtbot, window)
    take = next(iter(window.session.shot.takes.values()))
    assert [tf.offset for tf in take.frames] == [2, 4, 6]  # on 2s between keys at 1 and 9
    assert all((project_folder / tf.file).is_file() for tf in take.frames)
    frames = window.session.frames()
    assert [f.frame for f in frames if f.kind == "inbetween" and f.new_drawing] == [3, 5, 7]
    assert window.view.current_frame == 1  # the playhead stays where the user is...
    assert window.go_button.isVisible()  # ... and Go to New Frames is offered
    press(qtbot, window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert window.view.current_frame == 3 and not window.go_button.isVisible()
    assert "T1" in window.takes.list.item(0).text()

    press(qtbot, window, Qt.Key.Key_A)  # accept frame 3, go to the next pending one
    assert take.frames[0].status == ReviewStatus.ACCEPTED and window.view.current_frame == 5
    press(qtbot, window, Qt.Key.Key_X)  # reject frame 5: the previous drawing is held there
    assert take.frames[1].status == ReviewStatus.REJECTED
    held = window.session.frames()[4]
    assert held.note == "T1-2 rejected: holds T1-1" and held.image == window.session.frames()[2].image
    assert window.view.current_frame == 7  # on to the next pending one
    window.view.set_current_frame(5)
    assert "holds" in window.viewer.caption and "rejected" in window.viewer.caption
    window.view.set_current_frame(1)
    press(qtbot, window, Qt.Key.Key_N)  # next pending
    assert window.view.current_frame == 7
    press(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)  # accept the whole take
    assert {tf.status for tf in take.frames} == {ReviewStatus.ACCEPTED}
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [tf.status for tf in take.frames] == [ReviewStatus.ACCEPTED, ReviewStatus.REJECTED, ReviewStatus.PENDING]
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    press(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert take.frames[1].status == ReviewStatus.REJECTED

    dialog = window.dialogs.export_dialog()
    out = tmp_path / "out"
    dialog.out_dir.setText(str(out))
    dialog.preset.setCurrentIndex(dialog.preset.findData("opentoonz"))
    assert dialog.preview.text() == "test.0001.png  …  test.0018.png"
    dialog.preset.setCurrentIndex(dialog.preset.findData("aftereffects"))
    assert dialog.preview.text() == "test_00001.png  …  test_00018.png"
    dialog.preset.setCurrentIndex(dialog.preset.findData("opentoonz"))
    dialog.timing_sheet.setCurrentIndex(dialog.timing_sheet.findData("csv"))
    with qtbot.waitSignal(dialog.exported, timeout=PATIENCE_MS):
        dialog.start()
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"test.{i:04d}.png" for i in range(1, 19)]
    rows = list(csv.DictReader((out / "test.csv").open(encoding="utf-8")))
    assert len(rows) == 18
    assert rows[4]["status"] == "rejected" and rows[2]["status"] == "accepted"
    assert "Wrote 18 files" in dialog.status.text()
    dialog.close()


def test_cancel_a_slow_job_while_the_ui_responds(qtbot, test_engines, window, project_folder):
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="slow-test"))
    press(qtbot, window, Qt.Key.Key_G)
    task = window.worker.tasks[-1]
    qtbot.waitUntil(lambda: task.state == "running" and task.last_event is not None
                    and task.last_event.stage == "generate", timeout=PATIENCE_MS)
    # the UI keeps working: step through frames and see the job's progress arrive
    start = window.view.current_frame
    press(qtbot, window, Qt.Key.Key_Period)
    press(qtbot, window, Qt.Key.Key_Period)
    assert window.view.current_frame == start + 2
    qtbot.waitUntil(lambda: "/400" in window.jobs.items[task.id].toolTip(1), timeout=PATIENCE_MS)
    assert window.jobs.row_state(task)["step"].endswith("%")
    assert window.jobs.row_state(task)["stage"] == "generate"
    qtbot.waitUntil(lambda: window.jobs.preview.pixmap() is not None and not window.jobs.preview.pixmap().isNull(),
                    timeout=PATIENCE_MS)
    qtbot.mouseClick(window.jobs.buttons[task.id], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.jobs.row_state(task)["stage"] == "cancelled", timeout=PATIENCE_MS)
    assert window.session.shot.takes == {}
    takes_dir = project_folder / "takes"
    assert not takes_dir.exists() or list(takes_dir.iterdir()) == []  # nothing half-written


def test_closing_the_window_cancels_and_waits(qtbot, project_folder, test_engines):
    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.qt.main_window import MainWindow

    window = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
    window.prompts.ask_unsaved = lambda: "discard"
    window.show()
    window.files.open_project(project_folder)
    wait_for_probes(qtbot, window)  # a probe importing torch cannot be interrupted; not what is timed here
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine="slow-test"))
    window.editing.generate_selection()
    task = window.worker.tasks[-1]
    qtbot.waitUntil(lambda: task.state == "running", timeout=PATIENCE_MS)
    assert window.close()  # the gated job never ends by itself: closing returns because it cancelled
    assert task.state == "cancelled" and running_threads() == []


def test_failed_job_reads_clearly_with_details(qtbot, test_engines, window, project_folder):
    window.files.open_project(project_folder)
    qtbot.waitUntil(lambda: "nomodel-test" in window.generation.probes, timeout=PATIENCE_MS)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="nomodel-test"))
    status = window.inspector.engine_status.text()
    assert status.startswith("Unavailable: No ToonCrafter model was found")
    assert window.inspector.locate_button.isVisibleTo(window.inspector)
    window.editing.generate_selection()  # G refuses an engine already known to be unavailable, naming controls
    assert window.worker.tasks == []
    message = window.statusBar().currentMessage()
    assert "not available" in message and "Segment panel" in message and "--" not in message
    del window.generation.probes["nomodel-test"]  # not probed yet: the job runs and fails readably
    window.editing.generate_selection()
    task = window.worker.tasks[-1]
    qtbot.waitUntil(lambda: window.jobs.row_state(task)["stage"].startswith("failed: "), timeout=PATIENCE_MS)
    assert "not available" in task.error and "No ToonCrafter model" in task.error
    assert task.error in window.jobs.bars[task.id].toolTip()  # the clipped failure is readable in full
    assert window.jobs.buttons[task.id].text() == "Details…"
    box = window.jobs.show_details(task)
    assert "Traceback" in box.detailedText()
    box.close()
    assert window.session.shot.takes == {}


def test_tooncrafter_engine_state_is_shown_without_crashing(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    qtbot.waitUntil(lambda: "tooncrafter" in window.generation.probes, timeout=PATIENCE_MS)
    probe = window.generation.probes["tooncrafter"]
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine="tooncrafter"))
    text = window.inspector.engine_status.text()
    assert text.startswith("Ready." if probe.available else "Unavailable: ")
    assert probe.reason in text
    assert window.inspector.prompt.isEnabled()  # a prompt-driven engine enables its prompt and steps


def test_locate_model_reprobes_with_the_new_path(qtbot, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"not a checkpoint")
    window.dialogs.set_model_path(str(bad))
    assert window.settings.model_path == str(bad)
    qtbot.waitUntil(lambda: "tooncrafter" in window.generation.probes, timeout=PATIENCE_MS)
    probe = window.generation.probes["tooncrafter"]
    assert not probe.available and probe.reason


def test_regenerate_rejected_frames_keeps_the_others(qtbot, test_engines, window, project_folder):
    window.files.open_project(project_folder)
    span = window.session.spans()[0]
    window.session.push(SetSegmentSettings(span.key, engine="variant-test"))
    window.editing.generate_selection()
    wait_for_take(qtbot, window)
    first = next(iter(window.session.shot.takes.values()))
    window.view.set_current_frame(5)
    press(qtbot, window, Qt.Key.Key_X)
    press(qtbot, window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    wait_for_take(qtbot, window, 2)
    segment = window.session.shot.segments[span.key]
    second = window.session.shot.takes[segment.active_take]
    assert second.id != first.id and second.seed != first.seed
    assert [tf.offset for tf in second.frames] == [2, 4, 6]
    assert second.frames[0].file == first.frames[0].file  # kept, not copied
    assert second.frames[1].file.startswith(f"takes/{second.id}/") and second.frames[1].status == "pending"
    # A/B: pick the older take in the takes list and flip to it at the same frame
    window.takes.list.setCurrentRow(0)
    assert window.takes.compare_take == first.id
    window.view.set_current_frame(3)
    window.actions["ab_flip"].setChecked(True)
    assert window.viewer.badge.startswith("B: take T1")
    window.actions["ab_flip"].setChecked(False)
    press(qtbot, window, Qt.Key.Key_BracketLeft)  # previous take becomes active again (undoable)
    assert segment.active_take == first.id
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert segment.active_take == second.id


def test_recover_after_a_crash(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.view.set_current_frame(5)
    press(qtbot, window, Qt.Key.Key_K)
    assert window.files.autosave()
    # the app "crashes": nothing saved. The next start finds the recovery copy and offers it.
    window.session.set_project(None)
    window.answers = [True]
    assert window.files.open_project(project_folder)
    assert window.session.shot.drawings["d2"].is_key
    assert window.isWindowModified()
    assert window.files.save()
    assert Project.open(project_folder).shot.drawings["d2"].is_key


def test_declining_recovery_opens_the_saved_version(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    window.view.set_current_frame(5)
    press(qtbot, window, Qt.Key.Key_K)
    window.files.autosave()
    window.session.set_project(None)
    window.answers = [False]
    window.files.open_project(project_folder)
    assert not window.session.shot.drawings["d2"].is_key and not window.isWindowModified()


def test_new_project_from_a_folder_of_frames(qtbot, window, project_folder, tmp_path):
    target = tmp_path / "new_shot"
    task = window.files.create_project(project_folder / "src", target)
    qtbot.waitUntil(lambda: window.session.project is not None, timeout=PATIENCE_MS)
    assert task.label == "Import" and task in window.jobs.watched
    assert window.session.project.folder == target.resolve()
    assert window.timeline.frame_count == 9
    assert str(target.resolve()) in window.settings.recent_projects


def test_autosave_timer_writes_the_recovery_copy(qtbot, window, project_folder):
    from tooncrafter_studio.project.project import recovery_path

    window.files.open_project(project_folder)
    window.settings.autosave_interval_s = 1
    window.dialogs.apply()
    window.view.set_current_frame(5)
    press(qtbot, window, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: recovery_path(project_folder).exists(), timeout=PATIENCE_MS)


def test_copy_diagnostics(qtbot, window, project_folder):
    window.files.open_project(project_folder)
    qtbot.waitUntil(lambda: "flow" in window.generation.probes, timeout=PATIENCE_MS)
    text = window.dialogs.copy_diagnostics()
    assert QApplication.clipboard().text() == text
    assert "PySide6" in text and "flow: available" in text and str(project_folder) in text


def test_importing_the_app_does_not_import_torch():
    code = ("import sys; import tooncrafter_studio.qt.app, tooncrafter_studio.qt.main_window; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert result.returncode == 0, result.stderr


def test_dropping_frames_makes_a_new_project(qtbot, window, project_folder):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    files = sorted((project_folder / "src").glob("*.png"))[:4]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.session.project is not None, timeout=PATIENCE_MS)
    assert window.timeline.frame_count == 4
    assert window.session.project.folder.name == "src_project"


def test_run_app_opens_a_project_and_returns_an_exit_code(project_folder, tmp_path):
    code = (
        "import sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication(['studio'])\n"
        "from tooncrafter_studio.qt.app import run_app\n"
        "def finish():\n"
        "    window = next(w for w in app.topLevelWidgets() if w.objectName() == 'main_window')\n"
        "    print('TITLE', window.windowTitle(), window.timeline.frame_count)\n"
        "    window.close()\n"
        "QTimer.singleShot(1500, finish)\n"
        f"sys.exit(run_app(['--project', {str(project_folder)!r}]))\n"
    )
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "TOONCRAFTER_STUDIO_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PROCESS_CEILING_S, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"TITLE test — {project_folder.resolve()}" in result.stdout and " 18" in result.stdout


def test_export_runs_in_the_background_and_can_be_cancelled(qtbot, window, project_folder, tmp_path,
                                                            monkeypatch):
    from tooncrafter_studio.core.progress import StageReporter
    from tooncrafter_studio.qt.dialogs import export as export_dialog

    calls = []
    gate = StepGate(tokens=3)  # three files written, then the export waits until it is cancelled

    def slow_export(folder, shot, options, progress, cancel):
        calls.append(options)
        reporter = StageReporter(progress, cancel, "write", 500)
        reporter.start()
        for _ in range(500):
            gate.pass_step(cancel)
            reporter.step()

    monkeypatch.setattr(export_dialog, "export_sequence", slow_export)
    window.files.open_project(project_folder)
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.include_pending.setChecked(True)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 500 and dialog.task.last_event.done == 3,
                    timeout=PATIENCE_MS)  # (the bar itself shows at most ~30 updates a second)
    window.view.step(1)  # the window works while the export runs
    assert window.view.current_frame == 2
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: "cancelled" in dialog.status.text(), timeout=PATIENCE_MS)
    assert calls[0].include_pending and dialog.export_button.isEnabled()
    dialog.close()


def test_dragging_a_cell_edge_changes_the_exposure_in_one_undo_step(qtbot, window, project_folder):
    from PySide6.QtCore import QPoint

    window.files.open_project(project_folder)
    view = window.timeline
    view.set_zoom(30)
    view.horizontalScrollBar().setValue(0)
    y = 60
    edge = int(view.frame_x(5))  # the right edge of drawing 2 (frames 3-4)
    assert view.run_edge_at(edge) is not None
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(edge, y))
    for x in range(edge, edge + 3 * 30 + 1, 10):
        qtbot.mouseMove(view.viewport(), QPoint(x, y))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(edge + 90, y))
    shot = window.session.shot
    assert shot.cells[1].length == 5 and view.frame_count == 21  # held for 5 frames now
    window.session.undo()
    assert shot.cells[1].length == 2  # the whole drag was one step


def test_save_as_moves_the_project_with_its_takes(qtbot, test_engines, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine="quick-test"))
    window.editing.generate_selection()
    wait_for_take(qtbot, window)
    assert window.isWindowModified()
    target = tmp_path / "copy"
    assert window.files.save_as(target)
    assert str(target.resolve()) in window.windowTitle() and not window.isWindowModified()
    reopened = Project.open(target)
    take = next(iter(reopened.shot.takes.values()))
    assert all((target / tf.file).is_file() for tf in take.frames)
    assert window.settings.recent_projects[0] == str(target.resolve())


def test_new_project_from_a_sequence_pattern(qtbot, window, project_folder, tmp_path):
    task = window.files.create_project(str(project_folder / "src" / "frame.####.png"), tmp_path / "from_pattern")
    qtbot.waitUntil(lambda: window.session.project is not None, timeout=PATIENCE_MS)
    assert task.label == "Import" and window.timeline.frame_count == 9


def test_closing_the_window_during_an_export_stops_it(qtbot, project_folder, tmp_path, monkeypatch):
    from tooncrafter_studio.core.progress import StageReporter
    from tooncrafter_studio.core.settings import Settings
    from tooncrafter_studio.qt.dialogs import export as export_dialog
    from tooncrafter_studio.qt.main_window import MainWindow

    gate = StepGate()  # the export never gets past its first file unless it is cancelled

    def slow_export(folder, shot, options, progress, cancel):
        reporter = StageReporter(progress, cancel, "write", 10_000)
        reporter.start()
        for _ in range(10_000):
            gate.pass_step(cancel)
            reporter.step()

    monkeypatch.setattr(export_dialog, "export_sequence", slow_export)
    window = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
    window.show()
    window.files.open_project(project_folder)
    wait_for_probes(qtbot, window)
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    task = dialog.start()
    qtbot.waitUntil(lambda: task.state == "running", timeout=PATIENCE_MS)
    assert window.close()  # returns only once the export, which never ends by itself, has stopped
    assert task.cancel.cancelled
    assert running_threads() == []
