"""The generate → review loop as an animator walks it (issue 11's walk, one test per finding), and a
keyboard-only review session: reject → regenerate → a different drawing → accept → export has it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engines_for_tests import SlowEngine, VariantEngine
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QTreeWidget
from qt_helpers import PATIENCE_MS
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.media import read_image
from tooncrafter_studio.project.commands import SetSegmentSettings
from tooncrafter_studio.project.document import ReviewStatus
from tooncrafter_studio.project.resolve import ImageRef
from tooncrafter_studio.qt.panels.jobs import format_eta

HERE = Path(__file__).resolve().parent


@pytest.fixture
def engines():
    for engine in (VariantEngine, SlowEngine):
        register_engine(engine.id, engine)
    yield
    for engine in (VariantEngine, SlowEngine):
        unregister_engine(engine.id)


@pytest.fixture
def messages(window):
    seen: list[str] = []
    window.prompts.shown.connect(seen.append)
    return seen


def key(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window.timeline, key, modifier)


def wait_takes(qtbot, window, count):
    qtbot.waitUntil(lambda: len(window.session.shot.takes) >= count and not window.worker.busy, timeout=PATIENCE_MS)


def pixels_at(window, frame):
    """The pixels the timeline shows at a frame (and the ref they come from)."""
    resolved = window.session.frames()[frame - 1]
    ref = resolved.image
    if ref.kind == "take":
        take = window.session.shot.takes[ref.id]
        return read_image(window.session.folder / take.frames[ref.index].file), resolved
    return None, resolved


def use_engine(window, engine_id):
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine=engine_id))


# ----------------------------------------------------------------------- 1. regenerate is never silently identical


def test_a_deterministic_engine_says_so_instead_of_returning_the_rejected_frames(qtbot, window, project_folder,
                                                                                 messages):
    window.files.open_project(project_folder)
    use_engine(window, "crossfade")
    qtbot.waitUntil(lambda: "crossfade" in window.generation.probes, timeout=PATIENCE_MS)
    key(qtbot, window, Qt.Key.Key_G)
    wait_takes(qtbot, window, 1)
    assert window.inspector.seed_note.isVisibleTo(window.inspector)  # the seed is not offered
    assert not window.inspector.dice.isEnabled() and not window.inspector.fixed_seed.isEnabled()
    window.view.set_current_frame(5)
    key(qtbot, window, Qt.Key.Key_X)
    for modifier in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
        messages.clear()
        key(qtbot, window, Qt.Key.Key_R, modifier)
        assert not window.worker.busy and len(window.session.shot.takes) == 1  # nothing queued
        assert "deterministic" in messages[-1] and "Spacing" in messages[-1] and "Engine" in messages[-1]


def test_a_variant_engine_redraws_the_rejected_frame_differently(qtbot, engines, window, project_folder):
    window.files.open_project(project_folder)
    use_engine(window, "variant-test")
    key(qtbot, window, Qt.Key.Key_G)
    wait_takes(qtbot, window, 1)
    assert window.inspector.dice.isEnabled() and not window.inspector.seed_note.isVisibleTo(window.inspector)
    window.view.set_current_frame(5)
    rejected, _ = pixels_at(window, 5)
    key(qtbot, window, Qt.Key.Key_X)
    key(qtbot, window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    wait_takes(qtbot, window, 2)
    redrawn, frame = pixels_at(window, 5)
    assert frame.label == "T2-2" and frame.status == ReviewStatus.PENDING and frame.hidden is None
    assert not np.array_equal(redrawn, rejected)
    key(qtbot, window, Qt.Key.Key_R)  # a whole new take: other drawings again
    wait_takes(qtbot, window, 3)
    again, frame = pixels_at(window, 5)
    assert frame.label == "T3-2" and not np.array_equal(again, redrawn)


# ----------------------------------------------------------------------- 2. a rejected frame is itself


def test_a_rejected_frame_shows_its_own_label_and_status_everywhere(qtbot, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    key(qtbot, window, Qt.Key.Key_G)
    wait_takes(qtbot, window, 1)
    window.view.set_current_frame(3)
    key(qtbot, window, Qt.Key.Key_A)
    assert window.view.current_frame == 5
    key(qtbot, window, Qt.Key.Key_X)
    window.view.set_current_frame(5)
    # viewer: its own label and status; what is held in its place is named as such
    assert "T1-2 rejected: holds T1-1" in window.viewer.caption
    assert not window.viewer.caption.split("   ")[1].startswith("T1-1")
    # exposure sheet: the red cell is labelled T1-2, its tooltip tells the story
    run = next(r for r in window.timeline.runs if r.first == 5)
    assert run.frame.label == "T1-2" and run.frame.status == ReviewStatus.REJECTED
    assert window.timeline.tooltip_at(window.timeline.frame_x(5) + 2) == \
        "Frame 5: T1-2, rejected — T1-2 rejected: holds T1-1"
    # on demand (V): the rejected drawing itself
    take = next(iter(window.session.shot.takes.values()))
    key(qtbot, window, Qt.Key.Key_V)
    assert window.viewer.badge == "T1-2 rejected: its own drawing"
    assert ImageRef("take", take.id, 1) in window.view._wanted  # noqa: SLF001
    key(qtbot, window, Qt.Key.Key_V)
    assert window.viewer.badge == "" and ImageRef("take", take.id, 1) not in window.view._wanted  # noqa: SLF001
    # the timing sheet says the same
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.timing_sheet.setCurrentIndex(dialog.timing_sheet.findData("csv"))
    with qtbot.waitSignal(dialog.exported, timeout=PATIENCE_MS):
        dialog.start()
    rows = list(csv.DictReader(next((tmp_path / "out").glob("*.csv")).open(encoding="utf-8")))
    assert (rows[4]["label"], rows[4]["status"], rows[4]["note"]) == ("T1-2", "rejected", "T1-2 rejected: holds T1-1")
    assert rows[4]["image_id"] == take.id and rows[4]["image_index"] == "0"  # the held picture is T1-1's
    dialog.close()


# ----------------------------------------------------------------------- 3. nothing clipped without a tooltip


def clipped(window) -> list[str]:
    """Visible labels and buttons whose text does not fit and that carry no tooltip with the rest."""
    found = []
    for widget in window.findChildren(QLabel) + window.findChildren(QAbstractButton):
        text = widget.text().replace("&", "")
        if not widget.isVisibleTo(window) or not text or widget.toolTip() or "<" in text:
            continue
        rect = widget.contentsRect()
        if isinstance(widget, QLabel) and widget.wordWrap():
            if widget.heightForWidth(rect.width()) > rect.height() + 2:
                found.append(text)
        elif isinstance(widget, QLabel) and widget.fontMetrics().horizontalAdvance(text) > rect.width() + 1:
            found.append(text)
    for tree in window.findChildren(QTreeWidget):
        for i in range(tree.topLevelItemCount()):
            item = tree.topLevelItem(i)
            width = tree.columnWidth(0)
            if tree.fontMetrics().horizontalAdvance(item.text(0)) > width - 8 and not item.toolTip(0):
                found.append(item.text(0))
    for i in range(window.takes.list.count()):
        item = window.takes.list.item(i)
        if not item.toolTip():
            found.append(item.text())
    return found


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_no_label_is_clipped_without_a_tooltip(qtbot, window, project_folder, size):
    window.resize(*size)
    window.files.open_project(project_folder)
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine="tooncrafter"))
    key(qtbot, window, Qt.Key.Key_Right)
    window.editing.generate_all()  # takes rows and job rows with long names
    qtbot.waitUntil(lambda: not window.worker.busy, timeout=PATIENCE_MS)
    QApplication.processEvents()
    assert clipped(window) == []
    inspector = window.docks["inspector"].widget()  # the inspector scrolls: the Takes panel covers nothing
    assert window.docks["takes"].geometry().top() >= window.docks["inspector"].geometry().bottom()
    assert inspector.widget() is window.inspector


def test_no_label_is_clipped_at_150_percent_scaling(tmp_path):
    """Qt's scale factor is read when the application starts: a fresh process at 1.5."""
    env = {**os.environ, "QT_SCALE_FACTOR": "1.5", "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    script = f"""
import json, sys
sys.path.insert(0, {str(HERE)!r})
from PySide6.QtWidgets import QApplication
app = QApplication(["scaled"])
from qt_helpers import make_shot
from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.qt.main_window import MainWindow
import test_review_loop as t
folder = __import__("pathlib").Path({str(tmp_path)!r}) / "shot"
Project.create(folder, make_shot(folder, drawings=9, lengths=[2] * 9, keys=(0, 4, 8)))
w = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
w.resize(1280, 720)
w.show()
w.files.open_project(folder)
for _ in range(20):
    app.processEvents()
print(json.dumps({{"ratio": w.devicePixelRatio(), "clipped": t.clipped(w)}}))
w.close()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=PROCESS_CEILING_S)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ratio"] == 1.5 and result["clipped"] == []


def test_timeline_labels_stay_distinct_at_the_default_zoom(qtbot, window, tmp_path):
    from qt_helpers import make_shot

    from tooncrafter_studio.project.project import Project

    folder = tmp_path / "long"
    Project.create(folder, make_shot(folder, drawings=21, lengths=[1] * 21, keys=(0, 20)))
    window.files.open_project(folder)
    window.session.push(SetSegmentSettings(window.session.spans()[0].key, engine="crossfade", exposure=1))
    window.editing.generate_selection()
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 1 and not window.worker.busy, timeout=PATIENCE_MS)
    metrics = window.timeline.fontMetrics()
    width = int(window.timeline.frame_w - 4)
    drawn = [metrics.elidedText(f.label, Qt.TextElideMode.ElideLeft, width)
             for f in window.session.frames() if f.kind == "inbetween"]
    assert len(drawn) == 19 and len(set(drawn)) == 19  # T1-1 and T1-10 never read the same
    assert window.timeline.tooltip_at(window.timeline.frame_x(11) + 2).startswith("Frame 11: T1-10")


# ----------------------------------------------------------------------- 4. controls, not flags


def test_messages_name_controls_not_command_line_flags(qtbot, window, project_folder, messages, tmp_path):
    window.files.open_project(project_folder)
    use_engine(window, "tooncrafter")
    qtbot.waitUntil(lambda: "tooncrafter" in window.generation.probes, timeout=PATIENCE_MS)
    key(qtbot, window, Qt.Key.Key_G)
    assert "--" not in window.inspector.engine_status.text()
    if not window.generation.probes["tooncrafter"].available:  # G refuses it at once, and says why
        assert not window.worker.busy and "not available" in messages[-1]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "test.0001.png").write_bytes(b"x")
    dialog = window.dialogs.export_dialog()
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=PATIENCE_MS)
    assert "overwrit" in dialog.status.text() and "--" not in dialog.status.text()
    dialog.close()
    assert all("--" not in text for text in messages), messages


# ----------------------------------------------------------------------- 5. the jobs panel


def test_jobs_panel_reads_truthfully_and_the_playhead_stays(qtbot, engines, window, project_folder):
    window.files.open_project(project_folder)
    assert format_eta(0) == "" and format_eta(None) == "" and format_eta(75) == "1:15"
    window.view.set_current_frame(12)  # the user works elsewhere
    key(qtbot, window, Qt.Key.Key_G, Qt.KeyboardModifier.ShiftModifier)  # flow: no live previews
    qtbot.waitUntil(lambda: len(window.session.shot.takes) == 2 and not window.worker.busy, timeout=PATIENCE_MS)
    assert window.view.current_frame == 12  # not moved: offered instead
    assert window.go_button.isVisible()
    tasks = window.worker.tasks
    bar = window.jobs.bars[tasks[0].id]
    assert window.jobs.row_state(tasks[0])["step"] == "done" and bar.value() == bar.maximum()
    assert not window.jobs.preview.pixmap().isNull()  # the result shows where a preview would
    last = window.jobs.items[tasks[-1].id]
    assert window.jobs.tree.viewport().rect().intersects(window.jobs.tree.visualItemRect(last))
    use_engine(window, "slow-test")
    window.editing.generate_selection()
    task = window.worker.tasks[-1]
    qtbot.waitUntil(lambda: task.state == "running" and window.jobs.bars[task.id].value() > 0, timeout=PATIENCE_MS)
    window.worker.cancel(task)
    qtbot.waitUntil(lambda: window.jobs.row_state(task).get("stage") == "cancelled", timeout=PATIENCE_MS)
    bar = window.jobs.bars[task.id]
    assert bar.value() == 0 and window.jobs.row_state(task)["eta"] == ""  # not half done
    assert not window.session.project._reserved  # noqa: SLF001  (released on cancel)
    key(qtbot, window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    span = window.session.spans()[1]
    assert span.start_frame < window.view.current_frame < span.start_frame + span.gap


# ----------------------------------------------------------------------- the whole loop from the keyboard


def test_keyboard_only_review_session(qtbot, engines, window, project_folder, tmp_path):
    window.files.open_project(project_folder)
    use_engine(window, "variant-test")
    key(qtbot, window, Qt.Key.Key_G)
    wait_takes(qtbot, window, 1)
    key(qtbot, window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)  # Go to New Frames
    assert window.view.current_frame == 3
    key(qtbot, window, Qt.Key.Key_A)  # accept T1-1, on to frame 5
    assert window.view.current_frame == 5
    rejected, _ = pixels_at(window, 5)
    key(qtbot, window, Qt.Key.Key_X)  # reject T1-2
    key(qtbot, window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)  # redraw only that one
    wait_takes(qtbot, window, 2)
    key(qtbot, window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert window.view.current_frame == 5
    redrawn, frame = pixels_at(window, 5)
    assert frame.label == "T2-2" and not np.array_equal(redrawn, rejected)  # a different drawing
    key(qtbot, window, Qt.Key.Key_A)  # accept it
    key(qtbot, window, Qt.Key.Key_A)  # and T2-3 (frame 7)
    assert [f.status for f in window.session.frames() if f.kind == "inbetween" and f.new_drawing] == \
        [ReviewStatus.ACCEPTED] * 3
    key(qtbot, window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Export…
    dialog = window.dialogs.last_export  # noqa: SLF001
    out = tmp_path / "out"
    dialog.out_dir.selectAll()
    qtbot.keyClicks(dialog.out_dir, str(out))
    with qtbot.waitSignal(dialog.exported, timeout=PATIENCE_MS):
        qtbot.keyClick(dialog.out_dir, Qt.Key.Key_Return)
    exported = read_image(sorted(out.glob("*.png"))[4])  # frame 5
    assert np.array_equal(exported[..., :3], redrawn[..., :3])
    dialog.close()
