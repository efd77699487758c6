"""Install the ToonCrafter engine's stack into a private environment chosen for this machine's GPU.

    plan = plan_install("auto")          # detect the platform and GPU, pick the torch wheel index
    print(plan.describe())               # the exact commands (what `--dry-run` prints)
    env = run_install(plan, progress, cancel)

The choice: an NVIDIA driver (read from `nvidia-smi`) picks the newest CUDA build of torch that the
driver supports; macOS on Apple silicon takes PyPI's wheels (MPS); anything else takes the CPU
build. The user may override it. The environment lives in the user data folder
(setup/engine_env.py) and is created with `uv` (pip and venv are the fallback). The install is
idempotent (a finished environment for the same plan is left alone), resumable (a half-finished
one is completed; uv's cache keeps what was downloaded) and cancellable (the running installer
process is stopped).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..core.errors import Cancelled, InputError, StudioError
from ..core.fsio import atomic_write_text
from ..core.paths import user_cache_dir, user_data_dir
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from .engine_env import (
    MARKER_FILE,
    MARKER_VERSION,
    EngineEnv,
    MarkerDamaged,
    checked_verified,
    engine_env_dir,
    env_python,
    is_frozen,
    load_marker_file,
    read_marker,
    ready_env,
)

log = logging.getLogger(__name__)

# What the engine is tested with. torch's local version (+cu128) still matches `==2.14.1`.
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
STACK_PINS = ("open_clip_torch==3.3.0", "safetensors==0.8.0")
# What our own package needs in the worker (no Qt there).
WORKER_DEPS = ("numpy>=1.26", "pillow>=10", "opencv-python-headless>=4.9", "platformdirs>=4", "tqdm>=4.66")
PYTHON_VERSION = "3.11"

PYPI_INDEX = "https://pypi.org/simple"
TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"
NVIDIA_SMI_ENV = "TOONCRAFTER_STUDIO_NVIDIA_SMI"  # path of nvidia-smi, when not on PATH
UV_ENV = "TOONCRAFTER_STUDIO_UV"  # path of the uv binary to use

BACKENDS = ("auto", "cuda", "cpu", "mps")


@dataclass(frozen=True)
class CudaBuild:
    variant: str  # the wheel index's name, e.g. cu128
    cuda: str
    min_linux: str  # the driver each CUDA toolkit release asks for (NVIDIA's release notes)
    min_windows: str


# Newest first. torch 2.14.1 is published for these CUDA versions.
CUDA_BUILDS = (
    CudaBuild("cu130", "13.0", "580.65.06", "580.88"),
    CudaBuild("cu128", "12.8", "570.26", "570.65"),
    CudaBuild("cu126", "12.6", "560.28.03", "560.76"),
)
# CUDA 12 minor-version compatibility: any 12.x build runs on these drivers (without PTX JIT).
CUDA12_COMPAT_MIN = {"linux": "525.60.13", "windows": "528.33"}


class InstallError(StudioError):
    """The engine could not be installed; the message says why and what to do."""


class OfflineError(InstallError):
    """A download server could not be reached."""


# --------------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class MachineInfo:
    system: str  # linux | windows | macos | other
    machine: str  # x86_64, arm64, ...
    nvidia_driver: str | None = None
    gpu_name: str | None = None
    gpu_memory_mib: int | None = None
    nvidia_note: str = ""  # why no driver was read, when nvidia-smi exists but failed

    def describe(self) -> str:
        text = f"{self.system} {self.machine}"
        if self.nvidia_driver:
            memory = f", {self.gpu_memory_mib / 1024:.0f} GB" if self.gpu_memory_mib else ""
            text += f"; {self.gpu_name or 'NVIDIA GPU'}{memory}, driver {self.nvidia_driver}"
        elif self.nvidia_note:
            text += f"; {self.nvidia_note}"
        else:
            text += "; no NVIDIA driver found"
        return text


def _system_name(name: str | None = None) -> str:
    name = (name or platform.system()).lower()
    return {"darwin": "macos", "windows": "windows", "linux": "linux"}.get(name, "other")


def find_nvidia_smi() -> str | None:
    explicit = os.environ.get(NVIDIA_SMI_ENV)
    if explicit:
        return explicit if Path(explicit).exists() else None
    found = shutil.which("nvidia-smi")
    if found is None and sys.platform == "win32":  # the driver puts it here; not always on PATH
        candidate = Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32" / "nvidia-smi.exe"
        found = str(candidate) if candidate.exists() else None
    return found


SMI_OUTPUT_BYTES = 64 << 10  # what is read of nvidia-smi's answer (a line per GPU)
SMI_LINES = 64
_DRIVER = re.compile(r"\d{1,5}(\.\d{1,5}){1,3}")  # 580.65.06; thousands of digits are not a driver
_MEMORY_MIB = re.compile(r"(\d{1,9})(\.\d{1,6})?")


def parse_nvidia_smi(output: str) -> tuple[str, str, int | None] | None:
    """(driver, name, memory MiB) of the first GPU in `--query-gpu=driver_version,name,memory.total
    --format=csv,noheader,nounits` output; None when there is none. The output is outside text (a
    broken driver, a wrapper script): each field must look like what it is, or the line is skipped."""
    for line in output.splitlines()[:SMI_LINES]:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and _DRIVER.fullmatch(parts[0]):
            found = _MEMORY_MIB.fullmatch(parts[2]) if len(parts) > 2 else None
            memory = int(found.group(1)) if found else None
            name = "".join(c for c in parts[1] if c.isprintable())[:100] or None
            return parts[0], name or "NVIDIA GPU", memory
    return None


def _run_bounded(command: list[str], timeout: float, limit: int = SMI_OUTPUT_BYTES) -> tuple[int, str]:
    """(exit code, the first `limit` bytes of stdout and stderr) of a short query; the rest is drained
    unread, so a program that floods its output neither blocks nor fills memory."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    kept = bytearray()

    def drain() -> None:
        assert process.stdout is not None
        while chunk := process.stdout.read(65536):
            if len(kept) < limit:
                kept.extend(chunk[: limit - len(kept)])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        reader.join(timeout=5)
    return code, kept.decode("utf-8", "replace")


def detect_machine(system: str | None = None, machine: str | None = None) -> MachineInfo:
    system_name = _system_name(system)
    arch = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "aarch64": "arm64"}.get(arch, arch)
    if system_name == "macos":
        return MachineInfo(system_name, arch)
    smi = find_nvidia_smi()
    if smi is None:
        return MachineInfo(system_name, arch)
    try:
        code, output = _run_bounded([smi, "--query-gpu=driver_version,name,memory.total",
                                     "--format=csv,noheader,nounits"], timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return MachineInfo(system_name, arch, nvidia_note=f"nvidia-smi could not run ({str(exc)[:200]})")
    parsed = parse_nvidia_smi(output) if code == 0 else None
    if parsed is None:
        first = output.strip().splitlines()
        reason = "".join(c for c in first[0] if c.isprintable())[:120] if first else f"exit code {code}"
        return MachineInfo(system_name, arch, nvidia_note=f"nvidia-smi found no usable GPU ({reason})")
    driver, name, memory = parsed
    return MachineInfo(system_name, arch, driver, name, memory)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


# --------------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class InstallPlan:
    backend: str  # cuda | cpu | mps
    variant: str  # cu130 | cu128 | cu126 | cpu | pypi
    index_url: str  # where torch and torchvision come from
    reason: str  # one sentence: why this choice
    machine: MachineInfo
    env_dir: Path
    tool: str  # uv | pip
    commands: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    pins: tuple[str, ...] = field(default=TORCH_PINS + STACK_PINS)

    def marker(self) -> dict[str, object]:
        return {"version": MARKER_VERSION, "backend": self.backend, "variant": self.variant,
                "index_url": self.index_url, "pins": dict(p.split("==", 1) for p in self.pins)}

    def describe(self) -> str:
        lines = [f"Machine:     {self.machine.describe()}",
                 f"Backend:     {self.backend} ({self.variant}): {self.reason}",
                 f"Index:       {self.index_url}",
                 f"Pins:        {' '.join(self.pins)}",
                 f"Environment: {self.env_dir}",
                 f"Installer:   {self.tool}"]
        lines += [f"Note:        {n}" for n in self.notes]
        lines.append("Commands:")
        lines += ["  " + shlex.join(c) for c in self.commands]
        return "\n".join(lines)


def choose_cuda_build(driver: str, system: str) -> tuple[CudaBuild, str]:
    """The newest CUDA build this driver runs, and a note ('' or why it is not the newest)."""
    have = _version_tuple(driver)
    key = "min_windows" if system == "windows" else "min_linux"
    for build in CUDA_BUILDS:
        if have >= _version_tuple(getattr(build, key)):
            return build, ""
    compat_min = CUDA12_COMPAT_MIN["windows" if system == "windows" else "linux"]
    oldest = CUDA_BUILDS[-1]
    if have >= _version_tuple(compat_min):
        return oldest, (f"driver {driver} is older than CUDA {oldest.cuda} asks for "
                        f"({getattr(oldest, key)}); it runs through CUDA's minor-version compatibility, "
                        "but updating the NVIDIA driver is recommended.")
    raise InstallError(f"The NVIDIA driver {driver} is too old for torch {TORCH_PINS[0].split('==')[1]} "
                       f"(it needs at least {compat_min}). Update the driver from nvidia.com, or install "
                       "with --backend cpu.")


def find_uv() -> str | None:
    """The uv binary: an explicit one, the bundle's copy, the `uv` Python package's, or one on PATH."""
    explicit = os.environ.get(UV_ENV)
    if explicit:
        return explicit if Path(explicit).exists() else None
    exe = "uv.exe" if sys.platform == "win32" else "uv"
    if is_frozen():
        bundled = Path(getattr(sys, "_MEIPASS", "")) / "uv" / exe
        if bundled.exists():
            return str(bundled)
    try:
        import uv  # the PyPI package ships the binary

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")


def _venv_python_for_creation() -> str:
    # A frozen app has no usable interpreter of its own: uv fetches a standalone CPython 3.11.
    return PYTHON_VERSION if is_frozen() else sys.executable


def _commands(tool: str, uv: str | None, env_dir: Path, index_url: str, pypi_only: bool) -> list[tuple[str, ...]]:
    python = str(env_python(env_dir))
    torch_and_rest = TORCH_PINS + STACK_PINS + WORKER_DEPS
    if tool == "uv":
        assert uv is not None
        create = (uv, "venv", "--no-project", "--allow-existing", "--python", _venv_python_for_creation(),
                  str(env_dir))
        install = (uv, "pip", "install", "--python", python)
        if pypi_only:
            return [create, install + ("--index-url", index_url) + torch_and_rest]
        return [create,
                install + ("--index-url", index_url) + TORCH_PINS,
                install + ("--index-url", PYPI_INDEX) + STACK_PINS + WORKER_DEPS]
    create = (sys.executable, "-m", "venv", str(env_dir))
    install = (python, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off")
    if pypi_only:
        return [create, install + ("--index-url", index_url) + torch_and_rest]
    return [create,
            install + ("--index-url", index_url) + TORCH_PINS,
            install + ("--index-url", PYPI_INDEX) + STACK_PINS + WORKER_DEPS]


def plan_install(backend: str = "auto", machine: MachineInfo | None = None, env_dir: Path | None = None,
                 tool: str | None = None) -> InstallPlan:
    """Decide what to install where. `backend`: auto, cuda, cpu, mps, or a CUDA build name (cu128)."""
    machine = machine or detect_machine()
    env_dir = Path(env_dir) if env_dir else engine_env_dir()
    variants = {b.variant: b for b in CUDA_BUILDS}
    if backend not in BACKENDS and backend not in variants:
        raise InputError(f"Unknown backend '{backend}'; choose auto, cuda, cpu, mps or one of "
                         f"{', '.join(variants)}.")
    notes: list[str] = []
    macos = machine.system == "macos"
    if macos and machine.machine != "arm64":
        raise InstallError("torch 2.14 has no builds for Intel Macs; the ToonCrafter engine needs a Mac with "
                           "Apple silicon (or a PC with an NVIDIA GPU). The flow engine works here.")
    if backend == "mps" and not macos:
        raise InputError("The mps backend is Apple's GPU: it exists only on macOS.")
    if (backend == "cuda" or backend in variants) and macos:
        raise InputError("CUDA does not exist on macOS; use --backend mps (or auto).")

    if backend == "auto":
        backend = "mps" if macos else ("cuda" if machine.nvidia_driver else "cpu")
        if backend == "cpu" and machine.nvidia_note:
            notes.append(machine.nvidia_note + "; installing the CPU build (very slow generation).")
    if backend in variants:
        build = variants[backend]
        backend = "cuda"
        reason = f"CUDA {build.cuda} build chosen by hand"
    elif backend == "cuda":
        if machine.nvidia_driver:
            build, note = choose_cuda_build(machine.nvidia_driver, machine.system)
            reason = f"the newest CUDA build driver {machine.nvidia_driver} supports is CUDA {build.cuda}"
            if note:
                notes.append(note)
        else:
            build = CUDA_BUILDS[-1]
            reason = f"no NVIDIA driver was read; CUDA {build.cuda} needs the fewest driver updates"
            notes.append("No NVIDIA driver was found: the CUDA build will not run until one is installed.")
    else:
        build = None
        reason = ("PyPI's macOS wheels use Apple's GPU (MPS)" if backend == "mps" else
                  "no usable NVIDIA GPU" if not machine.nvidia_driver else "the CPU build was asked for")

    if build is not None:
        variant, index_url, pypi_only = build.variant, TORCH_INDEX.format(variant=build.variant), False
    elif macos:  # both mps and cpu: PyPI's macOS wheels are the only ones
        variant, index_url, pypi_only = "pypi", PYPI_INDEX, True
    else:
        variant, index_url, pypi_only = "cpu", TORCH_INDEX.format(variant="cpu"), False

    uv = find_uv()
    if tool is None:
        tool = "uv" if uv else "pip"
    if tool == "uv" and uv is None:
        raise InstallError("uv is not available (pip install uv).")
    if tool == "pip" and is_frozen():
        raise InstallError("The installer tool uv is missing from this app bundle; reinstall the app.")
    commands = _commands(tool, uv, env_dir, index_url, pypi_only)
    return InstallPlan(backend, variant, index_url, reason, machine, env_dir, tool, tuple(commands), tuple(notes))


# --------------------------------------------------------------------------------------------------
# Running it

_DOWNLOADING = re.compile(r"Downloading (\S+) \(([\d.]+\s*[KMG]i?B)\)")
_OFFLINE_SIGNS = ("dns error", "failed to lookup address", "name or service not known", "network is unreachable",
                  "connection refused", "temporary failure in name resolution", "failed to establish a new connection",
                  "could not connect", "error sending request", "nodename nor servname", "getaddrinfo failed")


def check_reachable(urls: Sequence[str], timeout: float = 5.0) -> None:
    """OfflineError naming the first host that cannot be reached (a TCP connect, no request)."""
    for url in urls:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
        if host is None:
            continue
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise OfflineError(f"Cannot reach {host} ({exc.strerror or exc}). Are you offline? Nothing was "
                               "changed; run the install again once connected (what was downloaded is kept).") \
                from exc


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    # Everything of the engine stays in our own folders, so that removing them removes it all.
    env.setdefault("UV_CACHE_DIR", str(user_cache_dir() / "uv"))
    env.setdefault("UV_PYTHON_INSTALL_DIR", str(user_data_dir() / "python"))
    env["UV_NO_PROGRESS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def _popen_group_kwargs() -> dict[str, object]:
    if sys.platform == "win32":  # no console window pops up from the windowed app
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _stop(process: subprocess.Popen) -> None:
    try:
        if sys.platform == "win32":
            process.terminate()
        else:
            os.killpg(process.pid, 15)
        process.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


def run_command(command: Sequence[str], on_line: Callable[[str], None], cancel: CancelToken) -> tuple[int, list[str]]:
    """Run one installer command, feeding each output line to `on_line`; stops it on cancel."""
    try:
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", env=_subprocess_env(),
                                   **_popen_group_kwargs())  # type: ignore[call-overload]
    except OSError as exc:
        raise InstallError(f"Could not start {command[0]}: {exc.strerror or exc}.") from exc
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip())
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    tail: list[str] = []
    while True:
        if cancel.cancelled:
            _stop(process)
            raise Cancelled("Engine install cancelled; run it again to continue where it stopped.")
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        tail = (tail + [line])[-40:]
        if line.strip():
            log.debug("%s", line)
            on_line(line)
    return process.wait(), tail


VERIFY_SCRIPT = (
    "import json, torch, torchvision, open_clip, safetensors, numpy, cv2;"
    "mps = getattr(torch.backends, 'mps', None);"
    "print('VERIFY ' + json.dumps({'torch': torch.__version__, 'cuda_build': torch.version.cuda,"
    " 'cuda_available': torch.cuda.is_available(), 'mps_available': bool(mps and mps.is_available())}))"
)


def _failure(step: str, code: int, tail: list[str]) -> InstallError:
    text = "\n".join(tail).lower()
    detail = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "")
    if any(sign in text for sign in _OFFLINE_SIGNS):
        return OfflineError(f"The download failed while {step}: the server could not be reached ({detail.strip()}). "
                            "Are you offline? Run the install again once connected; it continues where it stopped.")
    return InstallError(f"The engine install failed while {step} (exit code {code}): {detail.strip()}")


PENDING_FILE = "tooncrafter-env.pending.json"  # the plan an unfinished install was carrying out


def _read_json(path: Path) -> dict[str, object] | None:
    """A marker-like file (the pending plan), checked; None when absent or damaged (a FIFO, a device,
    wrong types): the install then goes on as if there were none and writes a good one."""
    try:
        return load_marker_file(path)
    except MarkerDamaged as exc:
        log.info("Ignoring %s: %s", path, exc)
        return None


def _same_plan(marker: dict[str, object], plan: InstallPlan) -> bool:
    return {k: v for k, v in marker.items() if k != "verified"} == plan.marker()


def _steps(plan: InstallPlan) -> list[str]:
    names = ["creating the environment"]
    if len(plan.commands) == 2:
        names.append("installing torch and the engine's packages")
    else:
        names += ["installing torch", "installing the engine's packages"]
    return names


def run_install(plan: InstallPlan, progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                reachable: Callable[[Sequence[str]], None] | None = None,
                verify_script: str | None = None) -> EngineEnv:
    """Carry out `plan`; returns the ready environment. Re-running a finished plan changes nothing."""
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    reachable = reachable or check_reachable
    verify_script = verify_script or VERIFY_SCRIPT
    env_dir = plan.env_dir
    existing = read_marker(env_dir)
    ready = ready_env(env_dir)
    if ready is not None and existing is not None and _same_plan(existing, plan):
        progress(ProgressEvent("install", 1, 1, f"already installed: {ready.description}"))
        return ready
    pending_file = env_dir / PENDING_FILE
    pending = _read_json(pending_file)
    # A finished or half-made environment of another plan (backend, pins) is started afresh: a torch
    # 2.14.1+cu128 already there would satisfy `torch==2.14.1` from the CPU index. uv's cache keeps
    # the downloads.
    other = existing if existing is not None else pending
    if other is not None and not _same_plan(other, plan) and env_dir.exists():
        log.info("Replacing the engine environment at %s (%s -> %s)", env_dir, other.get("variant"), plan.variant)
        try:
            shutil.rmtree(env_dir)
        except OSError as exc:
            raise InstallError(f"Could not replace the engine environment at {env_dir} ({exc.strerror or exc}); "
                               "close anything still using it (a running generation) and try again.") from exc
    reachable([plan.index_url, PYPI_INDEX])
    atomic_write_text(pending_file, json.dumps(plan.marker()), error=InstallError)
    steps = _steps(plan)
    total = len(steps) + 1
    downloads: dict[str, str] = {}
    for number, (command, step) in enumerate(zip(plan.commands, steps)):
        cancel.raise_if_cancelled()
        if number == 0 and env_python(env_dir).exists():
            progress(ProgressEvent("install", 1, total, "environment already there; continuing"))
            continue
        progress(ProgressEvent("install", number, total, step))

        def on_line(line: str, number: int = number) -> None:
            found = _DOWNLOADING.search(line)
            if found:
                downloads[found.group(1)] = found.group(2)
                sizes = ", ".join(f"{k} {v}" for k, v in downloads.items())
                progress(ProgressEvent("install", number, total, f"downloading {found.group(1)} ({found.group(2)})",
                                       extra={"downloads": dict(downloads), "summary": sizes}))
            elif line.lstrip().startswith(("Installed", "Successfully installed", "Resolved", "Prepared")):
                progress(ProgressEvent("install", number, total, line.strip()))

        code, tail = run_command(command, on_line, cancel)
        if code != 0:
            raise _failure(step, code, tail)
    progress(ProgressEvent("install", total - 1, total, "checking the installed packages"))
    found: dict[str, object] = {}

    def on_verify(line: str) -> None:  # the environment's interpreter speaks: its words are checked
        if line.startswith("VERIFY ") and len(line) < 10_000:
            try:
                found.update(checked_verified(json.loads(line[len("VERIFY "):])))
            except (ValueError, RecursionError):
                pass

    code, tail = run_command([str(env_python(env_dir)), "-c", verify_script], on_verify, cancel)
    if code != 0 or not found:
        raise _failure("checking the installed packages", code, tail)
    marker = plan.marker() | {"verified": found}
    atomic_write_text(env_dir / MARKER_FILE, json.dumps(marker, indent=2), error=InstallError)
    pending_file.unlink(missing_ok=True)
    env = ready_env(env_dir)
    assert env is not None
    if plan.backend == "cuda" and not found.get("cuda_available"):
        log.warning("torch %s is installed but sees no CUDA device", found.get("torch"))
    progress(ProgressEvent("install", total, total, f"installed torch {found.get('torch')} ({plan.variant})"))
    return env
