"""The studio keeps a project open while farm tasks render into it: real `generate --task-id`
processes register their takes; the open document merges them (project/farm_takes.py) without
losing its unsaved edits, and its save never overwrites a take the farm registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_factories import make_project
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.pipeline.jobs import segment_job
from tooncrafter_studio.pipeline.runner import apply_result, run_job
from tooncrafter_studio.project.commands import RemoveTake, SetShotProperties
from tooncrafter_studio.project.farm_takes import FarmTakeWatcher
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans

ROOT = Path(__file__).resolve().parents[2]
KEYS = (1, 5, 9, 13)
STUDIO = "the ToonCrafter Studio app"


def _farm_task(folder: Path, pair: str, seed: int) -> None:
    """One farm task, as a farm runs it: its own process, a task id, the flow engine."""
    result = subprocess.run([sys.executable, "-m", "tooncrafter_studio", "generate", str(folder), "--pair", pair,
                             "--seed", str(seed), "--task-id", f"b1-{pair}-s{seed}", "--engine", "flow", "-q"],
                            capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr


@pytest.fixture
def studio(tmp_path):
    """The project open in the studio: claimed as the app claims it, with an unsaved edit."""
    make_project(tmp_path, keys=KEYS, count=13)
    project = Project.open(tmp_path / "shot")
    project.claim(STUDIO, admit_shared=True)
    watcher = FarmTakeWatcher(project)
    yield project, watcher
    project.release()


def test_farm_tasks_run_while_the_studio_is_open_and_their_takes_arrive(studio):
    project, watcher = studio
    project.push(SetShotProperties(name="renamed, not saved"))
    assert not watcher.poll()  # nothing new yet
    for pair, seed in (("1:5", 1), ("5:9", 2), ("9:13", 3)):
        _farm_task(project.folder, pair, seed)
    arrived = watcher.poll()
    assert arrived.message == "3 new takes from the farm"
    assert len(project.shot.takes) == 3 and project.shot.name == "renamed, not saved" and project.modified
    assert {t.params["task_id"] for t in project.shot.takes.values()} == {"b1-1:5-s1", "b1-5:9-s2", "b1-9:13-s3"}
    assert not watcher.poll()  # seen once, merged once
    project.undo()  # one undoable step
    assert len(project.shot.takes) == 0 and project.shot.name == "renamed, not saved"
    project.redo()
    watcher.save()
    on_disk = Project.open(project.folder).shot
    assert on_disk.name == "renamed, not saved" and len(on_disk.takes) == 3


def test_a_save_never_overwrites_a_take_registered_since_the_last_poll(studio):
    project, watcher = studio
    project.push(SetShotProperties(name="edited"))
    _farm_task(project.folder, "5:9", 7)  # lands between two polls
    arrived = watcher.save()
    assert arrived.message == "1 new take from the farm"
    on_disk = Project.open(project.folder).shot
    assert on_disk.name == "edited" and [t.seed for t in on_disk.takes.values()] == [7]


def test_a_clean_document_stays_clean_and_deleted_farm_takes_stay_deleted(studio):
    project, watcher = studio
    _farm_task(project.folder, "1:5", 1)
    assert watcher.poll().takes and not project.modified  # the file already holds the take
    (take_id,) = project.shot.takes
    project.push(RemoveTake(take_id))
    _farm_task(project.folder, "5:9", 2)
    arrived = watcher.poll()
    assert [t.seed for t in arrived.takes] == [2] and take_id not in project.shot.takes


def test_a_farm_label_taken_by_an_unsaved_take_here_gets_the_next_one(studio):
    project, watcher = studio
    span = key_spans(project.shot)[0]
    local = run_job(segment_job(project, span, engine="flow", seed=5))  # the studio's own take, unsaved
    apply_result(local, project)
    assert local.take.label == "T1" and not Project.open(project.folder).shot.takes
    _farm_task(project.folder, "1:5", 9)  # labelled T1 on disk, which has no take yet
    (arrived,) = watcher.poll().takes
    assert arrived.label == "T2"
    labels = sorted(project.shot.takes[t].label for t in project.shot.segments[(span.key)].take_ids)
    assert labels == ["T1", "T2"]


def test_an_exclusive_command_is_still_refused_while_the_studio_is_open(studio):
    project, _watcher = studio
    result = subprocess.run([sys.executable, "-m", "tooncrafter_studio", "keys", str(project.folder), "--frames", "1,5"],
                            capture_output=True, text=True, timeout=PROCESS_CEILING_S, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 3 and "ToonCrafter Studio app" in result.stderr
