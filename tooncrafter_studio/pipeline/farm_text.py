"""The one rule for farm job files: text from the user is data, never code.

Project folders, shot names, executables and options come from people (and from file systems
other people named). Every farm file we write is read by a program that runs things, so:

- Generated scripts (OpenCue's submitter, Flamenco's job type, the Deadline submitter) are fixed
  text that never contains user text; they read their data from a JSON file beside them or from
  the job's settings. `json_data` is how that data is written: plain JSON, ASCII only, so line
  and paragraph separators (U+2028/U+2029) travel as escapes, whatever later reads it.
- Key=value files (Deadline's job_info / plugin_info) go through `key_value_text`, which refuses
  every control character (CR, LF, NUL, NEL, ...) and line/paragraph separator in a key or a value.
- `check_farm_text` runs before any file is written: a name that no farm format can carry (a control
  character, a line break, bytes that are not UTF-8) is refused with one line naming it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping

from ..core.errors import InputError

# Cc: C0, DEL and C1 controls (CR, LF, NUL, ESC, NEL...); Zl/Zp: U+2028/U+2029, which end a line in
# JavaScript and in many editors; Cs: lone surrogates, what bytes that are not UTF-8 become in a path.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def bad_character(text: str) -> str | None:
    """The first character of `text` a farm file cannot carry, described; None when all are fine."""
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            return f"a byte that is not UTF-8 ({char.encode('utf-8', 'surrogateescape')!r})"
        if category in _REFUSED_CATEGORIES:
            name = unicodedata.name(char, "control character")
            return f"U+{ord(char):04X} ({name.lower()})"
    return None


def _shown(text: str) -> str:
    """The text for an error line: escapes instead of the characters that are the problem."""
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def check_farm_text(fields: Iterable[tuple[str, str]]) -> None:
    """Refuse (InputError, exit 2) the first (what, text) pair holding a character no farm file can carry."""
    for what, text in fields:
        bad = bad_character(text)
        if bad is not None:
            raise InputError(f"{what} '{_shown(text)}' holds {bad}, which a farm job file cannot carry "
                             "safely; rename it (letters, digits, spaces and punctuation are fine).")


def key_value_text(entries: Mapping[str, object]) -> str:
    """Key=value lines (Deadline's .job files), refusing what would end a line or start a key."""
    lines = []
    for key, value in entries.items():
        text = str(value)
        if not key or "=" in key or bad_character(key) or key != key.strip():
            raise InputError(f"'{_shown(key)}' cannot be a key of a key=value job file.")
        bad = bad_character(text)
        if bad is not None:
            raise InputError(f"The value of {key} ('{_shown(text)}') holds {bad}, which a key=value job "
                             "file cannot carry.")
        lines.append(f"{key}={text}\n")
    return "".join(lines)


def json_data(value: object) -> str:
    """JSON for a data file a generated script reads: ASCII only, so every separator is escaped."""
    return json.dumps(value, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
