"""Where the app keeps its files, and where it looks for model weights (never downloading any)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "ToonCrafterStudio"
APP_AUTHOR = "ToonCrafterStudio"
MODELS_ENV = "TOONCRAFTER_STUDIO_MODELS"
HOME_ENV = "TOONCRAFTER_STUDIO_HOME"  # overrides every per-user folder (tests, portable installs)

# Model file names we recognise, best first: our converted safetensors, then the official checkpoint.
MODEL_FILE_NAMES = ("tooncrafter_512.safetensors", "tooncrafter_512_fp16.safetensors", "model.ckpt")


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value) if value else None


def user_config_dir() -> Path:
    home = _home_override()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))


def user_data_dir() -> Path:
    home = _home_override()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def user_cache_dir() -> Path:
    home = _home_override()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR))


def user_log_dir() -> Path:
    home = _home_override()
    return home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR))


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def repo_models_dir() -> Path:
    """The `models/` folder of a source checkout (next to the package)."""
    return Path(__file__).resolve().parents[2] / "models"


def resources_dir() -> Path:
    """The package's `resources/` folder (sample shot, icons): package data, so wheels and the frozen
    bundle carry it."""
    return Path(__file__).resolve().parents[1] / "resources"


CHOSEN = "chosen model file"  # the model setting in the app, --model on the command line


@dataclass(frozen=True)
class ModelSearchStep:
    origin: str  # "chosen model", "environment", "settings", "user data", "repository"
    path: Path | None


def model_search_steps(explicit: str | os.PathLike | None = None,
                       settings_path: str | os.PathLike | None = None) -> list[ModelSearchStep]:
    """The places searched for the ToonCrafter weights, in priority order."""
    env = os.environ.get(MODELS_ENV)
    return [
        ModelSearchStep(CHOSEN, Path(explicit) if explicit else None),
        ModelSearchStep(f"${MODELS_ENV}", Path(env) if env else None),
        ModelSearchStep("settings", Path(settings_path) if settings_path else None),
        ModelSearchStep("user data folder", user_models_dir()),
        ModelSearchStep("repository models/", repo_models_dir()),
    ]


def _model_in(path: Path) -> Path | None:
    if path.is_file():
        return path
    if path.is_dir():
        for name in MODEL_FILE_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
    return None


def find_model(explicit: str | os.PathLike | None = None,
               settings_path: str | os.PathLike | None = None) -> tuple[Path | None, list[str]]:
    """Return (model file or None, the places looked at as human-readable lines).

    An explicit path that does not exist is not skipped silently: it is reported and the
    search stops there, because the user asked for that file.
    """
    looked: list[str] = []
    for step in model_search_steps(explicit, settings_path):
        if step.path is None:
            continue
        found = _model_in(step.path)
        looked.append(f"{step.origin}: {step.path}")
        if found is not None:
            return found, looked
        if step.origin == CHOSEN:
            return None, looked
    return None, looked
