"""One way to get a ready engine: created from its id, configured once with its options.

The CLI (`generate`, `interpolate`) and the studio both come here. Options come from two places:
the app's settings (model file, device, memory mode; handed only to engines that take them) and
the explicit ones (`--param`, a segment's engine parameters), which win and are checked: a name
the engine does not take is an InputError, never silently stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..core.settings import Settings
from ..engines.base import Engine, check_option_names
from ..engines.registry import create_engine

log = logging.getLogger(__name__)


def settings_options(settings: Settings | None) -> dict[str, Any]:
    """The app settings an engine may take as options (only set ones; 'auto' device is no option)."""
    if settings is None:
        return {}
    options: dict[str, Any] = {"memory": settings.memory_mode}
    if settings.model_path:
        options["model"] = settings.model_path
    if settings.device in ("cuda", "mps", "cpu"):
        options["device"] = settings.device
    return options


def engine_options(engine: Engine, params: Mapping[str, Any] | None = None,
                   defaults: Mapping[str, Any] | None = None, strict: bool = True) -> dict[str, Any]:
    """`defaults` the engine takes (others dropped: the flow engine has no model file), then `params`:
    checked when `strict` (an unknown name is an InputError), else only those the engine takes (a
    segment keeps the ToonCrafter steps it was given when the user switches it to another engine)."""
    params = dict(params or {})
    taken = engine.options
    if strict:
        check_option_names(engine, params)
    elif taken is not None:
        dropped = sorted(set(params) - set(taken))
        if dropped:
            log.info("The %s engine does not take %s; left out", engine.id, ", ".join(dropped))
        params = {k: v for k, v in params.items() if k in taken}
    merged = {k: v for k, v in (defaults or {}).items() if taken is not None and k in taken}
    merged.update(params)
    return merged


def build_engine(engine_id: str, params: Mapping[str, Any] | None = None,
                 defaults: Mapping[str, Any] | None = None) -> Engine:
    """A new engine `engine_id`, configured with `params` over the `defaults` it takes."""
    engine = create_engine(engine_id)
    engine.configure(engine_options(engine, params, defaults))
    return engine


def _options_key(options: Mapping[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=repr)


class EngineCache:
    """Engines kept between jobs (a loaded model is not reloaded for every segment), one per id.

    `get` reconfigures a kept engine when the options differ (the engine decides what that costs:
    ToonCrafter reloads only when the model, device or precision changed), so a job never runs on
    options older than its own. Not thread-safe: use it from one thread (the worker's).
    """

    def __init__(self) -> None:
        self._engines: dict[str, tuple[Engine, str]] = {}

    def get(self, engine_id: str, params: Mapping[str, Any] | None = None,
            defaults: Mapping[str, Any] | None = None, strict: bool = True) -> Engine:
        kept = self._engines.get(engine_id)
        if kept is None:
            engine = create_engine(engine_id)
        else:
            engine = kept[0]
        options = engine_options(engine, params, defaults, strict)
        key = _options_key(options)
        if kept is None or kept[1] != key:
            engine.configure(options)
            self._engines[engine_id] = (engine, key)
        return engine

    def engines(self) -> list[Engine]:
        return [engine for engine, _key in self._engines.values()]

    def release_gpu(self) -> None:
        """Every kept engine gives its GPU memory back (weights and allocator cache); the engines
        stay, so the next job only places the model again (best effort)."""
        for engine, _key in self._engines.values():
            try:
                engine.release_gpu()
            except Exception:
                log.exception("Could not release the GPU memory of %s", engine.id)

    def clear(self) -> None:
        """Unload every kept engine (best effort: at exit nothing must fail)."""
        for engine, _key in self._engines.values():
            try:
                engine.unload()
            except Exception:
                log.exception("Could not unload %s", engine.id)
        self._engines = {}
