"""User settings: a small JSON file in the user config folder, written atomically."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import StudioError
from .fsio import atomic_write_text, read_regular_file
from .limits import MAX_SETTINGS_FILE_BYTES
from .paths import user_config_dir

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


@dataclass
class Settings:
    model_path: str | None = None
    default_engine: str = "flow"
    memory_mode: str = "auto"  # auto | high | balanced | low
    device: str = "auto"  # auto | cuda | mps | cpu
    # After a job or a cancel: keep the model on the GPU (the next job starts at once) or give the
    # weights and the allocator's cache back (other programs get the memory).
    keep_model_loaded: bool = True
    onion_skin_before: int = 2
    onion_skin_after: int = 2
    onion_skin_opacity: float = 0.35
    autosave_interval_s: int = 60
    recent_projects: list[str] = field(default_factory=list)
    last_project: str | None = None
    shortcuts: dict[str, str] = field(default_factory=dict)  # command id -> key sequence override
    cluster_address: str = ""  # "" runs jobs here; "ray", "ray:local", "ray:auto" or "ray://HOST:PORT": a Ray cluster

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            log.info("Ignoring unknown settings: %s", ", ".join(unknown))
        return cls(**{k: v for k, v in data.items() if k in known})

    def add_recent(self, project: str, limit: int = 10) -> None:
        self.recent_projects = [project] + [p for p in self.recent_projects if p != project]
        del self.recent_projects[limit:]
        self.last_project = project


def settings_path() -> Path:
    return user_config_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> Settings:
    """Load settings; a missing or damaged file gives defaults (and a log line), never a crash."""
    path = path or settings_path()
    if not path.exists():
        return Settings()
    try:  # bounded and regular only: a FIFO or a huge file must not stop the app from starting
        data = json.loads(read_regular_file(path, MAX_SETTINGS_FILE_BYTES, StudioError, "settings file"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return Settings.from_dict(data)
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError, TypeError, RecursionError, StudioError) as exc:
        log.warning("Settings file %s is unreadable (%s); using defaults", path, exc)
        return Settings()


def save_settings(settings: Settings, path: Path | None = None) -> None:
    atomic_write_text(path or settings_path(), json.dumps(asdict(settings), indent=2, sort_keys=True))
