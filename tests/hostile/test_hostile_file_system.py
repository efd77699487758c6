"""The file system and the machine fight back: a full disk, a read-only disk, kill -9 in the middle of
saves, not enough memory, a bug. Each case: the exit code, one line, nothing changed or half-written."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import assert_refused, cli, digest, make_project, python_env, refused

from tooncrafter_studio.engines.base import Engine, EngineCapabilities, InterpolationResult, ProbeResult
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.project.project import Project


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root on Linux); skipped where mounting is not allowed (the ENOSPC simulation runs anyway)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    _unmount(disk)


def _fill(disk: Path) -> None:
    for name, block in (("filler", 65536), ("filler2", 512)):  # then the last partial block too
        fd = os.open(disk / name, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)


def test_full_disk(small_disk, tmp_path, capsys):
    shot = make_project(small_disk)
    _fill(small_disk)
    watched = (shot, small_disk / "footage")
    refused(capsys, ["keys", shot, "--frames", "3"], 3, ("disk is full", "project.json"), *watched)
    refused(capsys, ["generate", shot, "--all", "--engine", "crossfade", "-q"], 3, ("disk is full",), *watched)
    refused(capsys, ["--quiet", "export", shot, "--out", small_disk / "out"], 3, ("disk is full",), *watched)
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]
    (small_disk / "filler").unlink()
    assert cli(capsys, "generate", shot, "--all", "--engine", "crossfade", "-q")[0] == 0  # and works again


def test_read_only_disk(small_disk, tmp_path, capsys):
    shot = make_project(small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, capture_output=True)
    watched = (small_disk,)
    refused(capsys, ["keys", shot, "--frames", "3"], 3, ("read-only", "project.json"), *watched)
    refused(capsys, ["generate", shot, "--all", "--engine", "crossfade", "-q"], 3, ("read-only",), *watched)
    refused(capsys, ["interpolate", small_disk / "footage" / "walk.0001.png", small_disk / "footage" / "walk.0005.png",
                     "--count", "1", "--out", small_disk / "inb", "-q"], 3, ("inb",), *watched)
    code, _out, err = cli(capsys, "export", shot, "--out", tmp_path / "out")  # reading a read-only project is fine
    assert code == 0, err


def test_simulated_full_disk_while_saving(tmp_path, capsys, monkeypatch):
    """Where no tmpfs can be mounted: the write itself fails with ENOSPC."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell the project's temporary file apart")
    shot = make_project(tmp_path)
    real_fdopen = os.fdopen

    def full(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):  # the atomic writes' temporary files
            def write(_data):
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr(os, "fdopen", full)
    refused(capsys, ["keys", shot, "--frames", "3"], 3, ("disk is full", "project.json"), tmp_path)


class _Failing(Engine):
    id = "test-failing"
    label = "Failing"
    capabilities = EngineCapabilities()
    options = ()

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def identity(self):
        return {"engine": self.id}

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "ready")

    def interpolate(self, request, progress=None, cancel=None) -> InterpolationResult:
        np.zeros(4)
        raise self.error


@pytest.mark.parametrize("error,code,words", [
    (MemoryError(), 3, "not enough memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/scratch/cache.bin"), 3, "/scratch/cache.bin"),
    (KeyError("latent"), 1, "this is a bug, the traceback is in"),
])
def test_engine_failures_by_cause(tmp_path, capsys, error, code, words):
    shot = make_project(tmp_path)
    register_engine("test-failing", lambda: _Failing(error))
    try:
        err = refused(capsys, ["generate", shot, "--all", "--engine", "test-failing", "-q"], code, (words,), tmp_path)
    finally:
        unregister_engine("test-failing")
    if code == 1:
        log = Path(err.split("the traceback is in ")[1].rstrip(".\n"))
        assert "KeyError: 'latent'" in log.read_text()


SAVER = """
import sys
from tooncrafter_studio.project.commands import SetExposure
from tooncrafter_studio.project.project import Project
project = Project.open(sys.argv[1])
project.claim("saver")
print("ready", flush=True)
n = 0
while True:
    n += 1
    project.push(SetExposure([n % 4], 1 + n % 3))
    project.save()
    print("saved", flush=True)
"""


def test_kill_9_in_the_middle_of_saves_never_breaks_the_project(tmp_path, capsys):
    shot = make_project(tmp_path)
    rng = random.Random(7)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(shot)], stdout=subprocess.PIPE, env=python_env())
        assert child.stdout.readline().strip() == b"ready"
        for _ in range(rng.randint(1, 12)):  # then killed during the next save
            assert child.stdout.readline().strip() == b"saved"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        Project.open(shot)  # always the old or the new document, never a mix
    # the dead saver's lock is stale: the next command takes it over and cleans its temp files
    code, _out, err = cli(capsys, "keys", shot, "--frames", "1,5")
    assert code == 0, err
    assert not list(shot.glob(".project.json.*.tmp")) and not (shot / ".owner.lock").exists()


def test_writing_commands_meet_a_live_owner(tmp_path, capsys):
    shot = make_project(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", SAVER, str(shot)], stdout=subprocess.PIPE, env=python_env())
    try:
        assert child.stdout.readline().strip() == b"ready"
        code, _out, err = cli(capsys, "generate", shot, "--all", "--engine", "crossfade", "-q")
        assert_refused(code, err, 3, f"process {child.pid}", "saver")
    finally:
        child.kill()
        child.wait()
    assert digest(shot / "takes") == {str(shot / "takes"): "absent"}


def test_planted_pipes_never_hang_a_command_or_the_app(tmp_path, capsys):
    from tooncrafter_studio.core.settings import Settings, load_settings

    shot = make_project(tmp_path)
    os.mkfifo(tmp_path / "settings.json")
    assert load_settings(tmp_path / "settings.json") == Settings()  # defaults, at once
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "shot.export.json")  # where an earlier export's sidecar would be
    code, _out, err = cli(capsys, "--quiet", "export", shot, "--out", out, "--timing-sheet", "none")
    assert code == 2 and "shot.export.json" in err  # refused to replace it, not hung reading it
    os.mkfifo(shot / ".owner.lock")
    os.utime(shot / ".owner.lock", (0, 0))  # an old leftover: treated as stale
    code, _out, err = cli(capsys, "keys", shot, "--frames", "3")
    assert code == 0, err


def test_absurd_param_values_are_input_errors(tmp_path, capsys):
    shot = make_project(tmp_path)
    for value in ("[" * 100_000, "9" * 5000):
        refused(capsys, ["generate", shot, "--all", "--engine", "crossfade", "--param", f"x={value}", "-q"], 2,
                ("--param x",), tmp_path)


def test_failed_runs_leave_no_empty_output_folders(tmp_path, capsys):
    shot = make_project(tmp_path)
    register_engine("test-failing", lambda: _Failing(MemoryError()))
    try:
        footage = tmp_path / "footage"
        refused(capsys, ["interpolate", footage / "walk.0001.png", footage / "walk.0005.png", "--count", "1",
                         "--engine", "test-failing", "--out", tmp_path / "new" / "inb", "-q"], 3, ("memory",), tmp_path)
    finally:
        unregister_engine("test-failing")
    (tmp_path / "footage" / "walk.0003.png").write_bytes(b"")  # a drawing damaged after import
    before = digest(tmp_path)
    code, _out, err = cli(capsys, "--quiet", "export", shot, "--out", tmp_path / "exports" / "v1")
    assert_refused(code, err, 2, "walk.0003.png")
    assert digest(tmp_path) == before and not (tmp_path / "exports").exists()


def test_export_into_a_file_says_it_is_a_file(tmp_path, capsys):
    """Seen in the studio and the CLI: `export --out notes.png` said "Could not write notes.png: File exists."."""
    shot = make_project(tmp_path)
    target = tmp_path / "notes.png"
    target.write_bytes(b"not a folder")
    err = refused(capsys, ["--quiet", "export", shot, "--out", target], 2, ("is a file, not a folder",), tmp_path)
    assert "File exists" not in err
    inside = target / "v1"  # a folder under a file: the same plain sentence, naming the file
    err = refused(capsys, ["--quiet", "export", shot, "--out", inside], 2, (f"{target} is a file, not a folder",),
                  tmp_path)
