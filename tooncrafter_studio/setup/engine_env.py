"""The private environment that holds the ToonCrafter engine's stack (torch and friends).

The app itself (and the frozen bundle) carries no torch. `tooncrafter-studio engine install`
creates a Python environment in the user data folder, installs the pinned stack for this machine's
GPU into it and, last, writes a marker file. Only an environment with the marker is "ready"; a
half-finished one is resumed by running the install again.

Generation then runs in that environment's interpreter as a worker process, importing our own
package from `package_source_root()` (the bundle ships the pure-Python sources for this).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.paths import user_cache_dir, user_data_dir

ENV_DIR_ENV = "TOONCRAFTER_STUDIO_ENGINE_ENV"  # overrides the location (tests, portable installs)
MARKER_FILE = "tooncrafter-env.json"
MARKER_VERSION = 1


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


def read_marker(env_dir: Path | None = None) -> dict[str, Any] | None:
    env_dir = env_dir or engine_env_dir()
    try:
        data = json.loads((env_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MARKER_VERSION else None


def ready_env(env_dir: Path | None = None) -> EngineEnv | None:
    """The private environment when its install finished and its interpreter is there, else None."""
    env_dir = env_dir or engine_env_dir()
    marker = read_marker(env_dir)
    python = env_python(env_dir)
    if marker is None or not python.exists():
        return None
    return EngineEnv(path=env_dir, python=python, backend=str(marker.get("backend", "")),
                     variant=str(marker.get("variant", "")), index_url=str(marker.get("index_url", "")),
                     pins=dict(marker.get("pins", {})))


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
