"""`engine install` and `engine status` on a damaged environment or an odd machine.

Outside text here: what `nvidia-smi` prints (a broken driver, a wrapper script), the marker and
pending files in the engine's folder (a half-copied profile, a damaged disk, a planted FIFO or link),
and what the environment's interpreter prints when the install checks it. None of it may crash the
command (exit 1), hang it, or be taken for "out of memory"."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_kit import cli, python_env, run_bounded

from tooncrafter_studio.setup import engine_install as ei
from tooncrafter_studio.setup.engine_env import ENV_DIR_ENV, MARKER_FILE, env_python, ready_env

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="shell scripts, FIFOs and /dev/zero")


def _fake_smi(folder: Path, body: str) -> Path:
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


SMI_ANSWERS = {
    "5000-digit driver": "echo '" + "9" * 5000 + ".1, NVIDIA GeForce RTX 4090, 24564'",
    "400-digit memory": "echo '575.64.03, NVIDIA GeForce RTX 4090, " + "9" * 400 + "'",
    "5000-digit memory": "echo '575.64.03, NVIDIA GeForce RTX 4090, " + "9" * 5000 + ".5'",
    "memory 1e999": "echo '575.64.03, NVIDIA GeForce RTX 4090, 1e999'",
    "memory nan": "echo '575.64.03, NVIDIA GeForce RTX 4090, nan'",
    "negative memory": "echo '575.64.03, NVIDIA GeForce RTX 4090, -24564'",
    "a driver of 40 parts": "echo '" + ".".join(["5"] * 40) + ", GPU, 1'",
    "a name of 100 KB": "printf '575.64.03, '; head -c 100000 /dev/zero | tr '\\0' 'N'; echo ', 24564'",
    "control characters": "printf '575.64.03, \\033[2J\\007GPU\\r, 24564\\n'",
    "20 MB of output": "head -c 20000000 /dev/zero | tr '\\0' '9'",
    "binary": "head -c 5000 /dev/urandom",
}


@posix_only
@pytest.mark.parametrize("case", sorted(SMI_ANSWERS))
def test_whatever_nvidia_smi_says_the_plan_is_made(tmp_path, monkeypatch, capsys, case):
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(_fake_smi(tmp_path, SMI_ANSWERS[case])))
    monkeypatch.setenv(ENV_DIR_ENV, str(tmp_path / "env"))
    code, out, err = cli(capsys, "engine", "install", "--dry-run", "--tool", "pip")
    assert code == 0, err
    assert "Traceback" not in err and max(len(line) for line in out.splitlines()) < 1000
    machine = ei.detect_machine("Linux", "x86_64")
    if machine.nvidia_driver is not None:  # taken as a GPU: every figure is a sane one
        assert len(machine.nvidia_driver) < 30 and len(machine.gpu_name or "") <= 100
        assert machine.gpu_memory_mib is None or 0 < machine.gpu_memory_mib < 10**9
        assert (machine.gpu_name or "").isprintable()


# -- the marker and the pending plan -----------------------------------------------------------

GOOD = {"version": 1, "backend": "cpu", "variant": "cpu", "index_url": "https://download.pytorch.org/whl/cpu",
        "pins": {"torch": "2.14.1"}}

MARKERS = {
    "pins a number": json.dumps(GOOD | {"pins": 5}),
    "pins of numbers": json.dumps(GOOD | {"pins": {"torch": 2.14}}),
    "backend a list": json.dumps(GOOD | {"backend": ["cuda"]}),
    "version true": json.dumps(GOOD | {"version": True}),
    "variant a number": json.dumps(GOOD | {"variant": 128}),
    "verified a list": json.dumps(GOOD | {"verified": [1, 2]}),
    "a list": "[1, 2, 3]",
    "null": "null",
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "5000-digit version": '{"version": ' + "9" * 5000 + "}",
    "not utf-8": b"\xff\xfe{".decode("latin-1"),
    "a megabyte of text": json.dumps(GOOD | {"variant": "x" * (1 << 20)}),
}


def _env_dir(tmp_path: Path) -> Path:
    env_dir = tmp_path / "env"
    python = env_python(env_dir)
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    return env_dir


@pytest.mark.parametrize("case", sorted(MARKERS))
def test_a_marker_with_the_wrong_content_is_a_damaged_environment(tmp_path, monkeypatch, capsys, case):
    env_dir = _env_dir(tmp_path)
    (env_dir / MARKER_FILE).write_text(MARKERS[case], encoding="latin-1")
    monkeypatch.setenv(ENV_DIR_ENV, str(env_dir))
    assert ready_env(env_dir) is None
    code, out, err = cli(capsys, "engine", "status")
    assert code == 0 and "damaged" in out and len(out) < 1000 and not err, (code, out, err)
    code, out, err = cli(capsys, "engine", "status", "--json")
    assert code == 0 and json.loads(out)["damaged"] and json.loads(out)["ready"] is False, (out, err)


def _special_marker(env_dir: Path, kind: str) -> None:
    marker = env_dir / MARKER_FILE
    if kind == "fifo":
        os.mkfifo(marker)
    elif kind == "link to /dev/zero":
        marker.symlink_to("/dev/zero")
    elif kind == "dangling link":
        marker.symlink_to(env_dir / "nowhere.json")
    else:
        marker.mkdir()


SPECIAL = ["fifo", "link to /dev/zero", "dangling link", "folder"]


@posix_only
@pytest.mark.parametrize("kind", SPECIAL)
def test_a_marker_that_is_not_a_file_never_hangs_status(tmp_path, kind):
    env_dir = _env_dir(tmp_path)
    _special_marker(env_dir, kind)
    try:
        done = subprocess.run([sys.executable, "-m", "tooncrafter_studio", "engine", "status"], capture_output=True,
                              text=True, env={**python_env(), ENV_DIR_ENV: str(env_dir)}, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("engine status hung on the marker")
    assert done.returncode == 0 and "damaged" in done.stdout and not done.stderr, done
    assert ready_env(env_dir) is None


def _script(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def _plan(env_dir: Path, *installs) -> ei.InstallPlan:
    plan = ei.plan_install("cpu", machine=ei.MachineInfo("linux", "x86_64"), env_dir=env_dir, tool="pip")
    return dataclasses.replace(plan, commands=(_script("pass"), *installs))


VERIFY_OK = ("import json; print('VERIFY ' + json.dumps({'torch': '2.14.1+cpu', 'cuda_build': None, "
             "'cuda_available': False, 'mps_available': False}))")


@posix_only
@pytest.mark.parametrize("kind", SPECIAL)
def test_install_completes_an_environment_whose_marker_and_pending_plan_are_not_files(tmp_path, kind):
    env_dir = _env_dir(tmp_path)
    _special_marker(env_dir, kind) if kind != "folder" else None
    os.mkfifo(env_dir / ei.PENDING_FILE)
    plan = _plan(env_dir, _script("pass"))
    env = run_bounded(lambda: ei.run_install(plan, reachable=lambda urls: None, verify_script=VERIFY_OK))
    assert env.variant == "cpu" and ready_env(env_dir) is not None
    assert stat.S_ISREG(os.lstat(env_dir / MARKER_FILE).st_mode)
    assert not os.path.lexists(env_dir / ei.PENDING_FILE)


@pytest.mark.parametrize("printed", ["VERIFY [1, 2]", "VERIFY null", "VERIFY " + "[" * 50_000,
                                     'VERIFY {"torch": ["x"], "cuda_available": "yes"}', "VERIFY 1e999"])
def test_what_the_environment_prints_when_checked_is_checked_too(tmp_path, printed):
    env_dir = _env_dir(tmp_path)
    plan = _plan(env_dir, _script("pass"))
    with pytest.raises(ei.InstallError, match="checking the installed packages"):
        ei.run_install(plan, reachable=lambda urls: None, verify_script=f"print({printed!r})")
    assert ready_env(env_dir) is None
