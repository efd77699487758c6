"""The registry of engines: built-ins plus third-party ones from an entry-point group."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..core.errors import InputError
from .base import Engine, EngineCapabilities

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tooncrafter_studio.engines"

# id -> "module:attribute"; imported on first use so that e.g. torch stays unloaded until needed.
_BUILTINS: dict[str, str] = {
    "flow": "tooncrafter_studio.engines.flow.engine:FlowEngine",
    "crossfade": "tooncrafter_studio.engines.crossfade:CrossfadeEngine",
    "tooncrafter": "tooncrafter_studio.engines.tooncrafter:create_tooncrafter_engine",
}

_extra: dict[str, Callable[[], Engine]] = {}
_built_for_info: dict[str, EngineInfo] = {}


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is and can do, as its class declares it: read without building one."""

    id: str
    label: str
    capabilities: EngineCapabilities
    accepts_sketches: bool = False  # takes sketches in params["sketches"] (engines/sketch.py)


def register_engine(engine_id: str, factory: Callable[[], Engine]) -> None:
    """Add an engine at run time (tests, plug-ins loaded by hand)."""
    _extra[engine_id] = factory
    _built_for_info.pop(engine_id, None)


def unregister_engine(engine_id: str) -> None:
    _extra.pop(engine_id, None)
    _built_for_info.pop(engine_id, None)


def _import(target: str) -> Callable[[], Engine]:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _plugin_targets() -> dict[str, object]:
    found: dict[str, object] = {}
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            found[ep.name] = ep
    except Exception:  # a broken plug-in must not break the app
        log.exception("Could not list engine plug-ins")
    return found


def engine_ids() -> list[str]:
    ids = list(_BUILTINS)
    ids += [i for i in _extra if i not in ids]
    ids += [i for i in _plugin_targets() if i not in ids]
    return ids


def _factory(engine_id: str) -> Callable[[], Engine]:
    if engine_id in _extra:
        return _extra[engine_id]
    if engine_id in _BUILTINS:
        return _import(_BUILTINS[engine_id])
    plugin = _plugin_targets().get(engine_id)
    if plugin is not None:
        return plugin.load()  # type: ignore[attr-defined]
    raise InputError(f"Unknown engine '{engine_id}'. Known engines: {', '.join(engine_ids())}.")


def create_engine(engine_id: str) -> Engine:
    """A new engine instance; an unknown id is an InputError listing the known ones."""
    return _factory(engine_id)()


def engine_info(engine_id: str) -> EngineInfo:
    """The engine's label and capabilities from its class (a factory function names its class in
    `engine_class`): nothing is built, configured or probed, and torch is not imported. A factory
    that names no class is called once and its answer kept. Unknown id: InputError."""
    factory = _factory(engine_id)
    cls = factory if isinstance(factory, type) else getattr(factory, "engine_class", None)
    if isinstance(cls, type) and issubclass(cls, Engine):
        return EngineInfo(engine_id, cls.label or engine_id, cls.capabilities,
                          bool(getattr(cls, "accepts_sketches", False)))
    if engine_id not in _built_for_info:
        engine = factory()
        _built_for_info[engine_id] = EngineInfo(engine_id, engine.label or engine_id, engine.capabilities,
                                                bool(getattr(engine, "accepts_sketches", False)))
    return _built_for_info[engine_id]
