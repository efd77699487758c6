"""The animator keeps the shot open while the farm renders: takes that farm tasks (real `generate`
processes) register appear in the open window with "N new takes from the farm", unsaved edits stay,
and saving keeps both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from waiting import PROCESS_CEILING_S

from tooncrafter_studio.project.commands import SetShotProperties
from tooncrafter_studio.project.project import Project

ROOT = Path(__file__).resolve().parents[2]


def _farm_task(folder: Path, pair: str, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tooncrafter_studio", "generate", str(folder), "--pair", pair,
                           "--seed", str(seed), "--task-id", f"farm-{pair}-{seed}", "--engine", "flow", "-q"],
                          capture_output=True, text=True, timeout=PROCESS_CEILING_S, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_farm_takes_arrive_in_the_open_window(qtbot, window, project_folder):
    assert window.files.open_project(project_folder)
    window.session.push(SetShotProperties(name="unsaved name"))
    for seed in (1, 2, 3):
        done = _farm_task(project_folder, "1:9", seed)
        assert done.returncode == 0, done.stderr  # not refused while the app has the project open
    assert window.files.poll_farm_takes() == 3
    assert "3 new takes from the farm" in window.statusBar().currentMessage()
    project = window.session.project
    assert project.shot.name == "unsaved name" and len(project.shot.takes) == 3
    assert window.files.save()
    on_disk = Project.open(project_folder).shot
    assert on_disk.name == "unsaved name" and sorted(t.seed for t in on_disk.takes.values()) == [1, 2, 3]
    assert window.files.farm_timer.isActive()
