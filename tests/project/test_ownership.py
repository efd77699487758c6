"""One writer per project: the lock file names the owner; dead owners' locks are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from project_factories import make_shot
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import ProjectLocked
from tooncrafter_studio.project.ownership import LOCK_FILE, claim, read_owner
from tooncrafter_studio.project.project import PROJECT_FILE, Project


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "p"
    Project.create(root, make_shot([1] * 5, keys=(0, 4), folder=str(tmp_path / "src")))
    return root


def _lock(folder, **fields) -> None:
    record = {"host": socket.gethostname(), "pid": 1, "started": "", "what": "the ToonCrafter Studio app",
              "since": "2026-12-03T09:00:00+00:00"}
    record.update(fields)
    (folder / LOCK_FILE).write_text(json.dumps(record))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_process_is_told_who_holds_the_project(folder):
    held = claim(folder, "the ToonCrafter Studio app")
    assert read_owner(folder)["pid"] == os.getpid()
    before = (folder / PROJECT_FILE).read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "tooncrafter_studio", "keys", str(folder), "--frames", "2"],
                          capture_output=True, text=True, env=env, timeout=PROCESS_CEILING_S)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "is open in the ToonCrafter Studio app on this computer" in done.stderr
    assert f"process {os.getpid()}" in done.stderr
    assert (folder / PROJECT_FILE).read_bytes() == before
    held.release()
    assert not (folder / LOCK_FILE).exists()


def test_lock_of_a_dead_process_is_taken_over_and_killed_saves_cleaned(folder, capsys):
    _lock(folder, pid=_dead_pid())
    leftover = folder / ".project.json.k1ll3d.tmp"
    leftover.write_text("{half a sav")
    assert run_cli(["keys", str(folder), "--frames", "3"]) == 0
    assert not leftover.exists() and not (folder / LOCK_FILE).exists()


def test_reused_pid_is_recognised_as_stale(folder):
    if not os.path.exists("/proc/1/stat"):
        pytest.skip("process start times need /proc")
    _lock(folder, pid=1, started="12345")  # pid 1 lives, but it did not start then
    with claim(folder, "test"):
        assert read_owner(folder)["pid"] == os.getpid()


def test_lock_from_another_host_is_respected_with_advice(folder, capsys):
    _lock(folder, host="render-node-7", pid=4242)
    leftover = folder / ".project.json.other.tmp"
    leftover.write_text("{")
    assert run_cli(["keys", str(folder), "--frames", "3"]) == 3
    err = capsys.readouterr().err
    assert "on render-node-7 (process 4242" in err and f"delete {folder.resolve() / LOCK_FILE}" in err
    assert leftover.exists()  # another program may be writing it
    with pytest.raises(ProjectLocked):
        claim(folder, "test")


def test_claims_are_reentrant_within_a_process(folder):
    first = claim(folder, "a")
    second = claim(folder, "b")
    second.release()
    assert (folder / LOCK_FILE).exists()
    first.release()
    assert not (folder / LOCK_FILE).exists()


def test_reading_commands_do_not_need_the_lock(folder, capsys):
    _lock(folder, host="render-node-7", pid=4242)
    assert run_cli(["info", str(folder)]) == 0


def test_shared_writers_take_no_exclusive_claim_but_respect_one(folder, capsys, monkeypatch):
    monkeypatch.setenv("TOONCRAFTER_STUDIO_SHARED_WRITES", "1")
    assert run_cli(["keys", str(folder), "--frames", "3"]) == 0
    assert not (folder / LOCK_FILE).exists()
    _lock(folder, host="workstation-2", pid=77)
    assert run_cli(["keys", str(folder), "--frames", "2"]) == 3
    assert "on workstation-2" in capsys.readouterr().err


def test_generate_is_a_shared_writer(folder, capsys):
    """Farm tasks run generate side by side on one project: no exclusive claim, but the app's is respected."""
    from tooncrafter_studio.project.ownership import claim as take

    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        _lock(folder, pid=other.pid, started="")  # a live generate elsewhere would hold nothing: a live app does
        assert run_cli(["generate", str(folder), "--all", "--engine", "crossfade", "-q"]) == 3
        assert "is open in the ToonCrafter Studio app" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    (folder / LOCK_FILE).unlink()
    with take(folder, "first generate", shared=True):  # (this shot has no pictures: it fails later, not on the lock)
        assert run_cli(["generate", str(folder), "--all", "--engine", "crossfade", "-q"]) == 2
        assert "is open in" not in capsys.readouterr().err
    assert not (folder / LOCK_FILE).exists()


def test_an_exclusive_claim_waits_for_live_shared_writers(folder, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    marker = folder / f".owner-shared.render-7.{other.pid}.lock"
    try:
        marker.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid, "started": "",
                                      "what": "the command 'tooncrafter-studio generate'", "since": "now"}))
        leftover = folder / ".project.json.x.tmp"
        leftover.write_text("{")  # maybe the live generate's save in flight: must not be removed
        assert run_cli(["keys", str(folder), "--frames", "3"]) == 3
        assert "tooncrafter-studio generate" in capsys.readouterr().err
        assert leftover.exists() and not (folder / LOCK_FILE).exists()
    finally:
        other.kill()
        other.wait()
    assert run_cli(["keys", str(folder), "--frames", "3"]) == 0  # its marker is stale now: removed
    assert not marker.exists() and not leftover.exists()


def _foreign_marker(folder, age_s: float) -> object:
    """The marker a farm task on another host left: `age_s` seconds since it last refreshed it."""
    import time

    from tooncrafter_studio.project.ownership import SHARED_PREFIX

    marker = folder / f"{SHARED_PREFIX}render-07.4242.lock"
    marker.write_text(json.dumps({"host": "render-07", "pid": 4242, "started": "", "what": "the command "
                                  "'tooncrafter-studio generate'", "since": "2026-12-03T09:00:00+00:00"}))
    then = time.time() - age_s
    os.utime(marker, (then, then))
    return marker


def test_a_live_marker_from_another_host_names_itself_not_the_lock_file(folder, capsys):
    marker = _foreign_marker(folder, age_s=30)
    for argv in (["keys", str(folder), "--frames", "1,5"], ["review", str(folder), "accept", "2"]):
        code = run_cli(argv)
        err = capsys.readouterr().err
        assert code == 3, err
        assert str(marker) in err and LOCK_FILE not in err and "render-07" in err, err
    assert marker.exists()


def test_a_marker_of_a_killed_farm_task_on_another_host_expires(folder, capsys):
    from tooncrafter_studio.project.ownership import STALE_SHARED_S

    marker = _foreign_marker(folder, age_s=STALE_SHARED_S + 60)
    assert run_cli(["keys", str(folder), "--frames", "1,5"]) == 0, capsys.readouterr().err
    assert not marker.exists()


def test_a_shared_writer_keeps_its_marker_fresh(folder):
    import time

    from tooncrafter_studio.project.ownership import SHARED_PREFIX, refresh_shared_markers

    with claim(folder, "the command 'tooncrafter-studio generate'", shared=True):
        (marker,) = folder.glob(f"{SHARED_PREFIX}*.lock")
        old = time.time() - 3600
        os.utime(marker, (old, old))
        refresh_shared_markers()  # what the heartbeat thread does every HEARTBEAT_S
        assert time.time() - marker.stat().st_mtime < 600
