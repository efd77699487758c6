"""Planted and damaged locks in a project folder: `.owner.lock` (who has the project open) and
`.write.lock` (the short lock around each take's registration).

A lock file is outside text: its PID may be absurd, its fields of any type, the file itself a link
(dangling, pointing outside the project) or a FIFO. And a write lock may be held by a process that
never lets go. Each case: one line, the right exit code, nothing written outside the project."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from hostile_kit import assert_refused, cli, digest, make_project, python_env, refused, run_subprocess

from tooncrafter_studio.cli.project_cmds import describe_keys
from tooncrafter_studio.core.errors import EngineUnavailable
from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.project.locking import LOCK_FILE as WRITE_LOCK
from tooncrafter_studio.project.ownership import LOCK_FILE as OWNER_LOCK
from tooncrafter_studio.project.project import Project

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="flock, FIFOs and symlinks as on POSIX")


@pytest.fixture
def shot(tmp_path):
    return make_project(tmp_path / "studio")


def _owner(shot, **fields) -> None:
    record = {"host": socket.gethostname(), "pid": 1, "started": "", "what": "the app", "since": "2026-12-03"}
    record.update(fields)
    (shot / OWNER_LOCK).write_text(json.dumps(record))


ABSURD_PID = int("9" * 400)


@pytest.mark.parametrize("pid", [ABSURD_PID, 2**64, -(2**70), True, 1.5, "1", [1], None],
                         ids=["400-digit", "2^64", "negative", "true", "float", "text", "list", "null"])
def test_an_owner_lock_of_this_host_with_an_impossible_pid_is_stale(shot, capsys, pid):
    _owner(shot, pid=pid)
    code, _out, err = cli(capsys, "keys", shot, "--frames", "3")
    assert code == 0, err  # no process can have that PID: the lock is taken over
    assert describe_keys(Project.open(shot)) == [1, 3, 5]
    assert not (shot / OWNER_LOCK).exists()


def test_an_owner_lock_of_another_host_with_absurd_fields_is_one_short_line(shot, capsys):
    _owner(shot, host="render-07", pid=ABSURD_PID, what="x" * 5000, since=["not", "a", "date"])
    err = refused(capsys, ["keys", shot, "--frames", "3"], 3, ("render-07", "is open in"), shot)
    assert len(err) < 600, err  # the 400 digits and 5000 letters are clipped


@posix_only
def test_a_dangling_write_lock_link_creates_nothing_outside_the_project(shot, tmp_path, capsys):
    outside = tmp_path / "outside" / "planted.txt"
    outside.parent.mkdir()
    (shot / WRITE_LOCK).symlink_to(outside)
    refused(capsys, ["generate", shot, "--all", "--engine", "crossfade", "-q"], 2, (WRITE_LOCK, "link"),
            shot, outside.parent)
    assert not outside.exists()


@posix_only
def test_a_write_lock_link_to_a_file_outside_is_not_followed(shot, tmp_path, capsys):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (shot / WRITE_LOCK).symlink_to(outside)
    refused(capsys, ["generate", shot, "--all", "--engine", "crossfade", "-q"], 2, (WRITE_LOCK, "link"),
            shot, outside)
    assert outside.read_text() == "keep me"


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_write_lock_that_is_not_a_file_is_refused_without_hanging(shot, kind):
    if kind == "fifo":
        os.mkfifo(shot / WRITE_LOCK)
    else:
        (shot / WRITE_LOCK).mkdir()
    before = digest(shot)
    done = run_subprocess("generate", shot, "--all", "--engine", "crossfade", "-q", timeout=120)
    assert_refused(done.returncode, done.stderr, 2, WRITE_LOCK)
    assert digest(shot) == before


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@posix_only
def test_a_write_lock_held_for_good_is_a_busy_project_said_at_once(shot):
    """Before: the command waited 120 s, then exit 2. Now: exit 3 within seconds, naming the holder."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(shot / WRITE_LOCK)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=python_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = digest(shot)
        began = time.monotonic()
        try:
            done = run_subprocess("generate", shot, "--all", "--engine", "crossfade", "-q", timeout=100)
        except subprocess.TimeoutExpired:
            pytest.fail("generate still waited for the write lock after 100 s")
        waited = time.monotonic() - began
        assert_refused(done.returncode, done.stderr, 3, "busy", WRITE_LOCK)
        if sys.platform == "linux":  # /proc/locks names the process that holds it
            assert f"process {holder.pid}" in done.stderr, done.stderr
        assert digest(shot) == before
        assert waited < 60, waited  # the stuck-holder limit plus a start-up on a loaded machine
    finally:
        holder.stdin.close()
        holder.wait(30)


class _FailsWhileRunning(Engine):
    id = "test-fails-while-running"
    label = "Fails while running"
    capabilities = EngineCapabilities()

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "ready")

    def interpolate(self, request, progress=None, cancel=None) -> InterpolationResult:
        raise EngineUnavailable("the GPU went away")


def test_a_generate_refused_after_the_lock_check_leaves_the_lock_file_as_it_was(shot, capsys):
    """The check before the work neither creates `.write.lock` nor rewrites who held it last."""
    register_engine(_FailsWhileRunning.id, _FailsWhileRunning)
    try:
        refused(capsys, ["generate", shot, "--all", "--engine", _FailsWhileRunning.id, "-q"], 3,
                ("GPU went away",), shot)  # no lock file yet: none is made
        assert not (shot / WRITE_LOCK).exists()
        done = run_subprocess("generate", shot, "--all", "--engine", "crossfade", "-q")  # another process
        assert done.returncode == 0, done.stderr
        assert b'"pid"' in (shot / WRITE_LOCK).read_bytes()  # the last holder is recorded
        refused(capsys, ["generate", shot, "--all", "--engine", _FailsWhileRunning.id, "-q"], 3,
                ("GPU went away",), shot)  # the lock file is there: left as it was
    finally:
        unregister_engine(_FailsWhileRunning.id)
