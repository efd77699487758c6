"""In-between timing: where between two keys each in-between falls.

Animators ask for "three in-betweens, slow in" rather than for numbers; this module turns the
count and the spacing into times strictly inside (0, 1), in increasing order. A pure module:
only the error type comes from core.

Spacing names follow the animator's chart, seen from the first key:
- linear: evenly spaced.
- ease-in: slow start — the drawings bunch up near the first key (a "slow out" of that key).
- ease-out: slow end — the drawings bunch up near the second key.
- ease-in-out: bunched near both keys, fast through the middle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.errors import InputError
from ..core.limits import MAX_INBETWEENS

SPACINGS: tuple[str, ...] = ("linear", "ease-in", "ease-out", "ease-in-out")


def _ease(u: float, spacing: str) -> float:
    if spacing == "linear":
        return u
    if spacing == "ease-in":  # slope 0 at the first key: small steps there
        return 1.0 - math.cos(u * math.pi / 2.0)
    if spacing == "ease-out":  # slope 0 at the second key
        return math.sin(u * math.pi / 2.0)
    return 0.5 - 0.5 * math.cos(u * math.pi)  # ease-in-out


def validate_times(times: Sequence[float]) -> list[float]:
    """Check explicit times: a non-empty, strictly increasing list inside (0, 1)."""
    values: list[float] = []
    for t in times:
        try:
            value = float(t)
        except (TypeError, ValueError):
            raise InputError(f"In-between time {t!r} is not a number.") from None
        if not math.isfinite(value) or not (0.0 < value < 1.0):
            raise InputError(f"In-between time {t} is outside (0, 1); the keys are at 0 and 1.")
        if values and value <= values[-1]:
            raise InputError(f"In-between times must increase: {value:g} comes after {values[-1]:g}.")
        values.append(value)
    if not values:
        raise InputError("No in-between times were given.")
    if len(values) > MAX_INBETWEENS:
        raise InputError(f"{len(values)} in-betweens is too many; at most {MAX_INBETWEENS} per pair of keys.")
    return values


def inbetween_times(count: int, spacing: str = "linear", explicit: Sequence[float] | None = None) -> list[float]:
    """The times of `count` in-betweens with the given spacing, or the validated `explicit` times.

    With `explicit`, `count` must equal its length or be 0/None-like (the explicit list decides).
    """
    if explicit is not None:
        values = validate_times(explicit)
        if count and count != len(values):
            raise InputError(f"{count} in-betweens were asked for but {len(values)} times were given.")
        return values
    if isinstance(count, bool) or not isinstance(count, int):
        raise InputError(f"The in-between count must be a whole number, not {count!r}.")
    if count < 1:
        raise InputError(f"The in-between count must be at least 1 (got {count}).")
    if count > MAX_INBETWEENS:
        raise InputError(f"{count} in-betweens is too many; at most {MAX_INBETWEENS} per pair of keys.")
    if spacing not in SPACINGS:
        raise InputError(f"Unknown spacing '{spacing}'. Use one of: {', '.join(SPACINGS)}.")
    times = [_ease((i + 1) / (count + 1), spacing) for i in range(count)]
    # Easing is strictly monotonic on (0, 1), so these stay increasing and inside (0, 1).
    return times
