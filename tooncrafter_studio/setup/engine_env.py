"""The private environment that holds the ToonCrafter engine's stack (torch and friends).

The app itself (and the frozen bundle) carries no torch. `tooncrafter-studio engine install`
creates a Python environment in the user data folder, installs the pinned stack for this machine's
GPU into it and, last, writes a marker file. Only an environment with the marker is "ready"; a
half-finished one is resumed by running the install again.

Generation then runs in that environment's interpreter as a worker process, importing our own
package from `package_source_root()` (the bundle ships the pure-Python sources for this).

The marker is read as outside text (a damaged disk, a half-copied profile, a planted file): only a
regular file of at most MAX_MARKER_BYTES is read (a FIFO never hangs, a link to /dev/zero is not
read), and every field is checked for its type and size. A damaged marker makes the environment
"not ready" with the reason (`marker_state`); `engine install` completes it and writes a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.fsio import read_regular_file
from ..core.paths import user_cache_dir, user_data_dir

ENV_DIR_ENV = "TOONCRAFTER_STUDIO_ENGINE_ENV"  # overrides the location (tests, portable installs)
MARKER_FILE = "tooncrafter-env.json"
MARKER_VERSION = 1
MAX_MARKER_BYTES = 64 << 10
BACKEND_NAMES = ("cuda", "cpu", "mps")


def engine_env_dir() -> Path:
    value = os.environ.get(ENV_DIR_ENV)
    return Path(value) if value else user_data_dir() / "engine-env"


def env_python(env_dir: Path | None = None) -> Path:
    """The interpreter of a virtual environment (Scripts\\python.exe on Windows, bin/python elsewhere)."""
    env_dir = env_dir or engine_env_dir()
    if sys.platform == "win32":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


@dataclass(frozen=True)
class EngineEnv:
    """A finished private environment, as its marker describes it."""

    path: Path
    python: Path
    backend: str  # cuda | cpu | mps
    variant: str  # e.g. cu128, cpu, pypi
    index_url: str
    pins: dict[str, str]

    @property
    def description(self) -> str:
        return f"{self.backend} ({self.variant}) at {self.path}"


class MarkerDamaged(InputError):
    """A marker (or pending) file that is not what `engine install` writes; the message says why."""


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def checked_verified(data: Any) -> dict[str, Any]:
    """What the install's verify step printed, kept only where each field has its type and size."""
    if not isinstance(data, dict):
        return {}
    kept: dict[str, Any] = {}
    for key in ("torch", "cuda_build", "python"):
        if _text(data.get(key), 500):
            kept[key] = data[key]
    for key in ("cuda_available", "mps_available"):
        if isinstance(data.get(key), bool):
            kept[key] = data[key]
    return kept


def check_marker(data: Any, name: str = MARKER_FILE) -> dict[str, Any]:
    """The marker's fields, each of the type and size `engine install` writes; MarkerDamaged otherwise."""
    if not isinstance(data, dict):
        raise MarkerDamaged(f"{name} is not a JSON object")
    version = data.get("version")
    if type(version) is not int or version != MARKER_VERSION:
        raise MarkerDamaged(f"{name} has version {str(version)[:20]!r}, not {MARKER_VERSION}")
    if data.get("backend") not in BACKEND_NAMES:
        raise MarkerDamaged(f"{name} names no backend ({', '.join(BACKEND_NAMES)})")
    variant, index_url, pins = data.get("variant"), data.get("index_url", ""), data.get("pins", {})
    if not _text(variant, 16) or not variant.isalnum():
        raise MarkerDamaged(f"{name} names no build variant (e.g. cu128, cpu)")
    if not _text(index_url, 500):
        raise MarkerDamaged(f"{name} has an index address that is not a short text")
    if not isinstance(pins, dict) or len(pins) > 50 or not all(_text(k, 100) and _text(v, 100) for k, v in pins.items()):
        raise MarkerDamaged(f"{name} has pins that are not package names and versions")
    marker = {"version": version, "backend": data["backend"], "variant": variant, "index_url": index_url,
              "pins": dict(pins)}
    if "verified" in data:
        if not isinstance(data["verified"], dict):
            raise MarkerDamaged(f"{name} has a check result that is not an object")
        marker["verified"] = checked_verified(data["verified"])
    return marker


def load_marker_file(path: Path) -> dict[str, Any] | None:
    """The checked content of a marker (or pending) file; None when there is none; MarkerDamaged."""
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(read_regular_file(path, MAX_MARKER_BYTES, MarkerDamaged, "marker file"))
    except (ValueError, RecursionError) as exc:
        raise MarkerDamaged(f"{path.name} is not readable JSON ({type(exc).__name__})") from None
    return check_marker(data, path.name)


def marker_state(env_dir: Path | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(the checked marker or None, why it is damaged or None)."""
    env_dir = env_dir or engine_env_dir()
    try:
        return load_marker_file(env_dir / MARKER_FILE), None
    except MarkerDamaged as exc:
        return None, str(exc)


def read_marker(env_dir: Path | None = None) -> dict[str, Any] | None:
    """The checked marker; None when there is none or it is damaged."""
    return marker_state(env_dir)[0]


def ready_env(env_dir: Path | None = None) -> EngineEnv | None:
    """The private environment when its install finished and its interpreter is there, else None."""
    env_dir = env_dir or engine_env_dir()
    marker = read_marker(env_dir)
    python = env_python(env_dir)
    if marker is None or not python.exists():
        return None
    return EngineEnv(path=env_dir, python=python, backend=marker["backend"], variant=marker["variant"],
                     index_url=marker["index_url"], pins=dict(marker["pins"]))


def is_frozen() -> bool:
    """True inside the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def package_source_root() -> Path:
    """A folder that holds our `tooncrafter_studio` package as plain .py files, for the worker's
    sys.path (first on it). The frozen bundle keeps its modules in an archive, so it ships a copy of
    the sources under `worker_src/`. An installed wheel lives among the app's other packages in
    site-packages, which must not shadow the engine environment's: a copy of just our package is
    kept in the user cache folder (per version)."""
    if is_frozen():
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "worker_src"
    package = Path(__file__).resolve().parents[1]
    if package.parent.name not in ("site-packages", "dist-packages"):
        return package.parent  # a source checkout
    from .. import __version__

    root = user_cache_dir() / "engine-src" / __version__
    if not (root / package.name / "__init__.py").exists():
        staging = root.with_name(f".{__version__}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(package, staging / package.name, ignore=shutil.ignore_patterns("__pycache__", "qt", "resources"))
        shutil.rmtree(root, ignore_errors=True)
        os.replace(staging, root)
    return root
