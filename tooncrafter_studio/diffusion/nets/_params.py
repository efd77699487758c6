"""Small helpers for reading the original YAML `params` mappings into our config dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...core.errors import ModelError


def unwrap_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept either a bare `params` mapping or a `{target: ..., params: {...}}` block."""
    if params is None:
        return {}
    if "target" in params and isinstance(params.get("params"), Mapping):
        return dict(params["params"])
    if "target" in params and "params" not in params:
        return {}
    return dict(params)


def check_options(component: str, values: Mapping[str, Any], required: Mapping[str, Any]) -> None:
    """Refuse options that the original supports but ToonCrafter sets one way (we only compute that way)."""
    for name, expected in required.items():
        if name in values and values[name] != expected:
            raise ModelError(
                f"{component} option {name}={values[name]!r} is not supported (ToonCrafter uses {expected!r})."
            )


def as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
