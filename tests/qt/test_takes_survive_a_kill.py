"""Issue: the studio killed within a minute after a generation lost the take (its PNGs were on
disk, but neither listed nor offered at the next start). Here the real main window generates a
take in a child process with autosave off; the moment the take lands the child is killed with
SIGKILL (no save, no autosave, no clean-up). The reopened project lists the take. And a take
whose folder landed but was never recorded is offered back when the studio opens the project."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r'''
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
import tooncrafter_studio.qt  # noqa: F401
from tooncrafter_studio.core.settings import Settings
from tooncrafter_studio.qt.main_window import MainWindow

win = MainWindow(Settings(autosave_interval_s=0), persist_settings=False)
assert win.files.open_project(sys.argv[1])
def landed(take_id, _key):
    print("landed", take_id, flush=True)
win.generation.take_added.connect(landed)
assert win.generation.generate(win.session.spans()[:1], engine="crossfade")
app.exec()  # until killed
'''


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_take_that_landed_is_listed_after_the_studio_is_killed(project_folder, tmp_path):
    from tooncrafter_studio.project.project import Project

    script = tmp_path / "studio_child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "QT_QPA_PLATFORM": "offscreen",
           "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    child = subprocess.Popen([sys.executable, str(script), str(project_folder)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()  # blocks until the take landed (or the child died)
        if not line.startswith("landed "):
            child.kill()
            pytest.fail(f"the child studio did not generate: {line!r} {child.stderr.read()[-3000:]}")
        take_id = line.split()[1]
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)  # no save, no autosave, no atexit
        child.wait()
        child.stdout.close()
        child.stderr.close()
    reopened = Project.open(project_folder)
    assert take_id in reopened.shot.takes
    take = reopened.shot.takes[take_id]
    assert all((project_folder / frame.file).is_file() for frame in take.frames)
    segment = reopened.shot.segments[(take.start_key, take.end_key)]
    assert segment.active_take == take_id


def test_the_studio_offers_back_a_take_that_was_never_recorded(window, project_folder):
    from tooncrafter_studio.pipeline.jobs import segment_job
    from tooncrafter_studio.pipeline.runner import run_job
    from tooncrafter_studio.project.project import Project
    from tooncrafter_studio.project.resolve import key_spans

    project = Project.open(project_folder)
    lost = run_job(segment_job(project, key_spans(project.shot)[0], engine="crossfade")).take  # killed here
    asked = []
    window.answers = [True]
    original_ask = window.prompts.ask
    window.prompts.ask = lambda title, text: asked.append((title, text)) or original_ask(title, text)
    assert window.files.open_project(project_folder)
    assert asked and "1 generated take in" in asked[0][1]
    assert lost.id in window.session.shot.takes
    window.session.undo()  # one undoable step
    assert lost.id not in window.session.shot.takes


def test_declining_keeps_the_folder_and_asks_again_next_time(window, project_folder):
    from tooncrafter_studio.pipeline.jobs import segment_job
    from tooncrafter_studio.pipeline.runner import run_job
    from tooncrafter_studio.project.project import Project
    from tooncrafter_studio.project.resolve import key_spans

    project = Project.open(project_folder)
    lost = run_job(segment_job(project, key_spans(project.shot)[0], engine="crossfade")).take
    window.answers = [False]
    assert window.files.open_project(project_folder)
    assert lost.id not in window.session.shot.takes
    assert (Path(project_folder) / "takes" / lost.id).is_dir()
