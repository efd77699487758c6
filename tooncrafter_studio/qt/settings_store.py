"""The window's one Settings object and where it is kept: every part holds the same object, changes
are made in place, and `save()` writes them (unless the window was told not to, as in tests)."""

from __future__ import annotations

import dataclasses
import logging

from ..core.errors import StudioError
from ..core.settings import Settings, load_settings, save_settings

log = logging.getLogger(__name__)


class SettingsStore:
    def __init__(self, settings: Settings | None = None, persist: bool = True) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.persist = persist

    def save(self) -> None:
        if self.persist:
            try:
                save_settings(self.settings)
            except StudioError as exc:
                log.warning("Settings not saved: %s", exc)

    def replace(self, settings: Settings) -> None:
        """Take every value of `settings` into the shared object, and save."""
        for field in dataclasses.fields(Settings):
            setattr(self.settings, field.name, getattr(settings, field.name))
        self.save()
