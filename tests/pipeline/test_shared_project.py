"""Farm tasks adding takes to one project from separate processes: the write lock, kill -9, re-runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_factories import make_project
from waiting import PATIENCE_S

from tooncrafter_studio.core.errors import InputError, ProjectError
from tooncrafter_studio.pipeline.shared_project import check_task_id, task_take_id
from tooncrafter_studio.project.locking import project_write_lock
from tooncrafter_studio.project.project import Project

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and fork-free POSIX processes")

WORKER = Path(__file__).with_name("farm_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _start(*argv, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, argv)], env=_env(**env),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate()
    assert process.returncode == 0, err
    return out


def _task(folder: Path, pair: str, task_id: str, parked: bool = False) -> subprocess.Popen:
    return _start("cli", "generate", folder, "--pair", pair, "--seed", "3", "--engine",
                  "test-parked" if parked else "test-blend", "--task-id", task_id, "-q")


def _wait_until_inside_the_engine(task: subprocess.Popen) -> None:
    """Read the task's stderr until the parked engine says where it is (a dead task fails here)."""
    seen = []
    for line in task.stderr:
        if line.strip() == "inside the engine":
            return
        seen.append(line)
    task.wait()
    pytest.fail(f"the task ended (exit {task.returncode}) before reaching the engine: {''.join(seen)}")


def test_concurrent_read_modify_writes_lose_no_take(tmp_path):
    project = make_project(tmp_path)
    workers = [_start("commit", project.folder, 12, tag) for tag in ("a", "b", "c")]
    for worker in workers:
        _finish(worker)
    shot = Project.open(project.folder).shot
    assert len(shot.takes) == 36  # a lost update (no lock, or no re-read) drops some
    labels = sorted(int(t.label[1:]) for t in shot.takes.values())
    assert labels == list(range(1, 37))  # numbered on the document each one found on disk


def test_lock_of_a_killed_holder_is_released(tmp_path):
    holder = _start("hold", tmp_path)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ProjectError, match="is busy"), project_write_lock(tmp_path, timeout_s=0.2):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        # the kernel drops a dead holder's lock at once; the ceiling is only for a loaded machine
        with project_write_lock(tmp_path, timeout_s=PATIENCE_S):
            pass
    finally:
        holder.kill()
        holder.communicate()


def test_two_tasks_finishing_together_both_land(tmp_path):
    project = make_project(tmp_path)
    tasks = [_task(project.folder, "1:9", "a"), _task(project.folder, "9:17", "b")]
    for task in tasks:
        _finish(task)
    shot = Project.open(project.folder).shot
    assert sorted(t.params["task_id"] for t in shot.takes.values()) == ["a", "b"]
    assert {t.id for t in shot.takes.values()} == {task_take_id("a"), task_take_id("b")}
    for take in shot.takes.values():
        assert all((project.folder / f.file).is_file() for f in take.frames)


def test_task_killed_mid_run_then_rerun_makes_one_take(tmp_path):
    project = make_project(tmp_path)
    before = (project.folder / "project.json").read_text()
    task = _task(project.folder, "1:9", "shot-1-9", parked=True)
    _wait_until_inside_the_engine(task)  # one frame made, the engine parked before the next
    os.kill(task.pid, signal.SIGKILL)
    task.communicate()
    assert (project.folder / "project.json").read_text() == before
    # what a kill between writing the frames and registering them leaves: frames nobody lists
    take_id = task_take_id("shot-1-9")
    orphan = project.folder / "takes" / take_id
    orphan.mkdir(parents=True, exist_ok=True)
    (orphan / "0001.png").write_bytes(b"half")
    (project.folder / "takes" / f".tmp-{take_id}").mkdir()

    out = _finish(_task(project.folder, "1:9", "shot-1-9"))
    assert "take T1" in out
    out = _finish(_task(project.folder, "1:9", "shot-1-9"))  # the farm runs it once more
    assert "already made take T1" in out
    shot = Project.open(project.folder).shot
    (take,) = shot.takes.values()
    assert take.id == take_id and take.params["task_id"] == "shot-1-9"
    assert sorted(p.name for p in (project.folder / "takes").iterdir()) == [take_id]
    # the rerun's own frames replaced the killed attempt's (beside them: take.json, the take's own record)
    assert sorted(p.name for p in orphan.glob("*.png")) == ["0001.png", "0002.png", "0003.png"]
    assert (orphan / "0001.png").read_bytes()[:4] == b"\x89PNG"
    json.loads((project.folder / "project.json").read_text())


def test_task_id_checks():
    assert task_take_id("a") == task_take_id("a") != task_take_id("b")
    with pytest.raises(InputError):
        check_task_id("")
    with pytest.raises(InputError):
        check_task_id("a\nb")


def test_task_id_is_for_one_pair(tmp_path, capsys):
    from tooncrafter_studio.cli.main import run_cli

    project = make_project(tmp_path)
    assert run_cli(["generate", str(project.folder), "--all", "--task-id", "x", "-q"]) == 2
    assert "exactly one --pair" in capsys.readouterr().err
    assert Project.open(project.folder).shot.takes == {}


def test_write_lock_excludes_threads_of_one_process(tmp_path):
    import threading

    inside = threading.Event()
    leave = threading.Event()

    def hold():
        with project_write_lock(tmp_path):
            inside.set()
            leave.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(PATIENCE_S)
    with pytest.raises(ProjectError), project_write_lock(tmp_path, timeout_s=0.1):
        pass
    leave.set()
    thread.join()
    with project_write_lock(tmp_path, timeout_s=PATIENCE_S):
        pass
