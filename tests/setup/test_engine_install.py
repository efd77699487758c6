"""`engine install`: the torch build chosen per machine, and the install run (resume, cancel, offline)."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from pathlib import Path

import pytest
from local_net import closed_port_url
from waiting import wait_for

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import Cancelled, InputError
from tooncrafter_studio.setup import engine_install as ei
from tooncrafter_studio.setup.engine_env import ENV_DIR_ENV, MARKER_FILE, env_python, ready_env

QUERY = "driver_version,name,memory.total"


def fake_nvidia_smi(folder: Path, stdout: str, code: int = 0) -> Path:
    """An executable that answers like nvidia-smi (and fails on any other query)."""
    answer = folder / "nvidia-smi.out"
    answer.write_text(stdout)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncase \"$*\" in *{QUERY}*) cat '{answer}'; exit {code};; esac\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="the fake nvidia-smi is a shell script")
@pytest.mark.parametrize("system, smi_output, variant, note", [
    ("Linux", "580.95.05, NVIDIA GeForce RTX 5090, 32607\n", "cu130", ""),
    ("Linux", "575.64.03, NVIDIA GeForce RTX 4090, 24564\n", "cu128", ""),
    ("Linux", "570.26, NVIDIA RTX A6000, 49140\n", "cu128", ""),
    ("Linux", "565.57.01, NVIDIA GeForce RTX 3060, 12288\n", "cu126", ""),
    ("Linux", "535.183.01, Tesla T4, 15360\n", "cu126", "minor-version compatibility"),
    ("Windows", "581.57, NVIDIA GeForce RTX 4070, 12282\n", "cu130", ""),
    ("Windows", "572.16, NVIDIA GeForce RTX 3080, 10240\n", "cu128", ""),
    ("Windows", "560.94, NVIDIA GeForce RTX 2060, 6144\n", "cu126", ""),
    # two GPUs: the first one's driver decides (all share one driver)
    ("Linux", "570.133.07, NVIDIA H100, 81559\n570.133.07, NVIDIA H100, 81559\n", "cu128", ""),
])
def test_the_driver_picks_the_cuda_build(tmp_path, monkeypatch, system, smi_output, variant, note):
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(fake_nvidia_smi(tmp_path, smi_output)))
    machine = ei.detect_machine(system=system, machine="AMD64")
    assert machine.nvidia_driver == smi_output.split(",")[0]
    plan = ei.plan_install("auto", machine=machine, env_dir=tmp_path / "env", tool="pip")
    assert (plan.backend, plan.variant) == ("cuda", variant)
    assert plan.index_url == f"https://download.pytorch.org/whl/{variant}"
    torch_command = plan.commands[1]
    assert torch_command[torch_command.index("--index-url") + 1] == plan.index_url
    assert "torch==2.14.1" in torch_command and "torchvision==0.29.1" in torch_command
    stack_command = plan.commands[2]
    assert stack_command[stack_command.index("--index-url") + 1] == "https://pypi.org/simple"
    assert "open_clip_torch==3.3.0" in stack_command and "safetensors==0.8.0" in stack_command
    assert (note in " ".join(plan.notes)) if note else not plan.notes


def test_a_driver_too_old_for_any_build_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(fake_nvidia_smi(tmp_path, "470.256.02, Tesla K80, 11441\n")))
    machine = ei.detect_machine(system="Linux", machine="x86_64")
    with pytest.raises(ei.InstallError, match="470.256.02 is too old.*--backend cpu"):
        ei.plan_install("auto", machine=machine, env_dir=tmp_path / "env")
    # the user may still take the CPU build
    assert ei.plan_install("cpu", machine=machine, env_dir=tmp_path / "env").variant == "cpu"


def test_nvidia_smi_without_a_working_driver_falls_back_to_cpu(tmp_path, monkeypatch):
    failing = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(fake_nvidia_smi(tmp_path, failing, code=9)))
    machine = ei.detect_machine(system="Linux", machine="x86_64")
    assert machine.nvidia_driver is None and "couldn't communicate" in machine.nvidia_note
    plan = ei.plan_install("auto", machine=machine, env_dir=tmp_path / "env")
    assert (plan.backend, plan.variant, plan.index_url) == ("cpu", "cpu", "https://download.pytorch.org/whl/cpu")
    assert "CPU build" in plan.notes[0]


def test_no_gpu_macos_and_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(tmp_path / "absent"))
    linux = ei.detect_machine(system="Linux", machine="x86_64")
    assert linux.nvidia_driver is None and not linux.nvidia_note
    assert ei.plan_install("auto", machine=linux, env_dir=tmp_path).variant == "cpu"
    assert ei.plan_install("cu128", machine=linux, env_dir=tmp_path).index_url.endswith("/cu128")
    with pytest.raises(InputError, match="only on macOS"):
        ei.plan_install("mps", machine=linux, env_dir=tmp_path)

    mac = ei.detect_machine(system="Darwin", machine="arm64")
    plan = ei.plan_install("auto", machine=mac, env_dir=tmp_path, tool="pip")
    assert (plan.backend, plan.variant, plan.index_url) == ("mps", "pypi", "https://pypi.org/simple")
    assert len(plan.commands) == 2 and "torch==2.14.1" in plan.commands[1]
    assert ei.plan_install("cpu", machine=mac, env_dir=tmp_path).variant == "pypi"
    with pytest.raises(InputError, match="CUDA does not exist on macOS"):
        ei.plan_install("cuda", machine=mac, env_dir=tmp_path)
    with pytest.raises(ei.InstallError, match="Intel Macs"):
        ei.plan_install("auto", machine=ei.detect_machine(system="Darwin", machine="x86_64"), env_dir=tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="the fake nvidia-smi is a shell script")
def test_dry_run_prints_the_exact_commands_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ei.NVIDIA_SMI_ENV, str(fake_nvidia_smi(tmp_path, "575.64.03, NVIDIA GeForce RTX 4090, 24564\n")))
    monkeypatch.setenv(ENV_DIR_ENV, str(tmp_path / "env"))
    assert run_cli(["engine", "install", "--dry-run", "--tool", "uv"]) == 0
    out = capsys.readouterr().out
    assert "Index:       https://download.pytorch.org/whl/cu128" in out
    assert "RTX 4090, 24 GB, driver 575.64.03" in out
    assert "pip install --python" in out and "torch==2.14.1 torchvision==0.29.1" in out
    assert "venv --no-project --allow-existing" in out
    assert not (tmp_path / "env").exists()
    assert run_cli(["engine", "status", "--json"]) == 0
    assert '"ready": false' in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# The install run, with the installer's commands replaced by small scripts (the real download is
# the opt-in test below).


def _script(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def _create_env(env_dir: Path) -> tuple[str, ...]:
    # an "environment" whose python is this one: the verify step can import torch from here
    python = env_python(env_dir)
    return _script(f"import pathlib; p = pathlib.Path({str(python)!r}); p.parent.mkdir(parents=True, "
                   f"exist_ok=True); p.write_text('#!/bin/sh\\nexec {sys.executable} \"$@\"\\n'); p.chmod(0o755)")


def _plan(tmp_path: Path, *installs: tuple[str, ...]) -> ei.InstallPlan:
    machine = ei.MachineInfo("linux", "x86_64")
    plan = ei.plan_install("cpu", machine=machine, env_dir=tmp_path / "env", tool="pip")
    return dataclasses.replace(plan, commands=(_create_env(plan.env_dir), *installs))


def _no_network_check(urls):
    pass


# What the real check prints, made by the environment's interpreter (importing torch here takes
# half a minute on a busy CI machine; the opt-in real install runs the real check).
FAKE_VERIFY = ("import json, sys; print('VERIFY ' + json.dumps({'torch': '2.14.1+cpu', 'cuda_build': None, "
               "'cuda_available': False, 'mps_available': False, 'python': sys.executable}))")


@pytest.mark.skipif(sys.platform == "win32", reason="the fake environment's python is a shell script")
def test_install_reports_sizes_writes_the_marker_and_is_idempotent(tmp_path):
    plan = _plan(tmp_path, _script("print('Downloading torch (846.2MiB)'); print(' Downloaded torch')"),
                 _script("print('Installed 12 packages in 2s')"))
    events = []
    env = ei.run_install(plan, events.append, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    assert env.variant == "cpu" and env.python == env_python(plan.env_dir)
    messages = [e.message for e in events]
    assert "downloading torch (846.2MiB)" in messages and "Installed 12 packages in 2s" in messages
    assert events[-1].done == events[-1].total and "installed torch" in messages[-1]
    assert ready_env(plan.env_dir) is not None
    # again: nothing runs (these commands would fail)
    again = dataclasses.replace(plan, commands=(_script("raise SystemExit(5)"),) * 3)
    events.clear()
    ei.run_install(again, events.append, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    assert [e.message for e in events] == [f"already installed: {env.description}"]


@pytest.mark.skipif(sys.platform == "win32", reason="the fake environment's python is a shell script")
def test_a_failed_install_leaves_no_ready_env_and_resumes(tmp_path):
    broken = _plan(tmp_path, _script("print('Resolved 9 packages')"),
                   _script("import sys; print('error: HTTP 500 from the index', file=sys.stderr); sys.exit(2)"))
    with pytest.raises(ei.InstallError, match="exit code 2.*HTTP 500"):
        ei.run_install(broken, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    assert env_python(broken.env_dir).exists() and ready_env(broken.env_dir) is None
    assert not (broken.env_dir / MARKER_FILE).exists()
    # the next run keeps the environment (its creation would fail now) and completes it
    fixed = dataclasses.replace(broken, commands=(_script("raise SystemExit(7)"), _script("pass"), _script("pass")))
    events = []
    ei.run_install(fixed, events.append, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    assert "environment already there; continuing" in [e.message for e in events]
    assert ready_env(fixed.env_dir) is not None


def test_offline_is_said_plainly(tmp_path):
    plan = _plan(tmp_path, _script("pass"))
    closed = closed_port_url()
    with pytest.raises(ei.OfflineError, match="Cannot reach 127.0.0.1.*offline"):
        ei.run_install(plan, reachable=lambda urls: ei.check_reachable([closed], timeout=2))
    assert not plan.env_dir.exists()
    dns = _plan(tmp_path, _script("import sys; print('error: Failed to fetch: dns error: failed to lookup "
                                  "address information', file=sys.stderr); sys.exit(2)"))
    with pytest.raises(ei.OfflineError, match="offline"):
        ei.run_install(dns, reachable=_no_network_check, verify_script=FAKE_VERIFY)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the process with os.kill")
def test_cancel_stops_the_installer_process(tmp_path):
    pid_file = tmp_path / "pid"
    slow = _script(f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                   "print('Downloading torch (846.2MiB)', flush=True); import threading; threading.Event().wait()")
    plan = _plan(tmp_path, slow, _script("pass"))
    cancel = ei.CancelToken()

    def progress(event):
        if event.message.startswith("downloading"):  # the installer is running: the user cancels
            cancel.cancel()

    with pytest.raises(Cancelled, match="run it again"):  # the installer never ends by itself
        ei.run_install(plan, progress, cancel, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    pid = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, "the installer process to end after cancel")
    assert ready_env(plan.env_dir) is None


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TOONCRAFTER_STUDIO_TEST_REAL_INSTALL"),
                    reason="downloads ~1 GB from download.pytorch.org and PyPI; set "
                           "TOONCRAFTER_STUDIO_TEST_REAL_INSTALL=1 to run")
def test_real_cpu_install_from_the_registry(tmp_path):
    plan = ei.plan_install("cpu", env_dir=tmp_path / "env")
    env = ei.run_install(plan)
    from tooncrafter_studio.setup.engine_env import read_marker

    verified = read_marker(env.path)["verified"]
    assert verified["torch"].startswith("2.14.1") and verified["cuda_available"] is False


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_real_installer_creates_the_environment_and_installs_from_pypi(tmp_path, tool):
    """The real commands of a plan (flags, paths) work with uv and with the pip fallback; only the
    package list is cut to one small wheel from PyPI, so that CI downloads a few hundred KB, not torch."""
    if tool == "uv" and ei.find_uv() is None:
        pytest.skip("uv is not installed")
    try:
        ei.check_reachable([ei.PYPI_INDEX], timeout=5)
    except ei.OfflineError:
        pytest.skip("PyPI is not reachable")
    plan = ei.plan_install("cpu", machine=ei.MachineInfo("linux", "x86_64"), env_dir=tmp_path / "env", tool=tool)
    create, _torch, stack = plan.commands
    small = stack[:stack.index("--index-url") + 2] + ("tqdm>=4.66",)
    real = dataclasses.replace(plan, commands=(create, small))
    env = ei.run_install(real, reachable=_no_network_check,
                         verify_script="import json, tqdm; print('VERIFY ' + json.dumps({'torch': tqdm.__version__}))")
    assert env.python.exists() and str(env.python).startswith(str(tmp_path))
    assert ready_env(plan.env_dir) is not None


@pytest.mark.skipif(sys.platform == "win32", reason="the fake environment's python is a shell script")
def test_cli_install_prints_steps_and_sizes_then_status_says_ready(tmp_path, monkeypatch, capsys):
    from tooncrafter_studio.cli import engine_cmds

    monkeypatch.setenv(ENV_DIR_ENV, str(tmp_path / "env"))
    scripted = _plan(tmp_path, _script("print('Downloading torch (846.2MiB)')"), _script("print('Installed 3 packages')"))
    monkeypatch.setattr(engine_cmds, "plan_install", lambda backend, env_dir=None, tool=None: scripted)
    monkeypatch.setattr(ei, "check_reachable", lambda urls: None)
    monkeypatch.setattr(ei, "VERIFY_SCRIPT", FAKE_VERIFY)
    assert run_cli(["engine", "install", "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "downloading torch (846.2MiB)" in out and "Installed 3 packages" in out
    assert "engine environment is ready: cpu (cpu)" in out
    assert run_cli(["engine", "status"]) == 0
    assert "ready, cpu (cpu)" in capsys.readouterr().out


@pytest.mark.skipif(sys.platform == "win32", reason="the fake environment's python is a shell script")
def test_a_half_made_environment_of_another_backend_is_started_afresh(tmp_path):
    failing = _plan(tmp_path, _script("raise SystemExit(1)"))
    cuda = dataclasses.replace(failing, backend="cuda", variant="cu128",
                               index_url="https://download.pytorch.org/whl/cu128")
    with pytest.raises(ei.InstallError):
        ei.run_install(cuda, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    leftover = cuda.env_dir / "leftover-from-cu128"
    leftover.write_text("torch 2.14.1+cu128")
    cpu = _plan(tmp_path, _script("pass"))  # same folder, the CPU build now
    events = []
    ei.run_install(cpu, events.append, reachable=_no_network_check, verify_script=FAKE_VERIFY)
    assert not leftover.exists() and "environment already there; continuing" not in [e.message for e in events]
    assert ready_env(cpu.env_dir).variant == "cpu"
    assert not (cpu.env_dir / ei.PENDING_FILE).exists()
