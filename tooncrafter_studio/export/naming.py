"""File names of exported sequences, with presets that match what each tool expects to read.

| preset       | example            | separator | padding | first number |
|--------------|--------------------|-----------|---------|--------------|
| opentoonz    | name.0001.png      | .         | 4       | 1            |
| aftereffects | name_00001.png     | _         | 5       | 1            |
| nuke         | name.1001.png      | .         | 4       | 1001         |
| blender      | name0001.png       | (none)    | 4       | 1            |
| krita        | name0000.png       | (none)    | 4       | 0            |

Any of name, separator, padding and start number can be set explicitly over a preset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import ExportError, StudioError
from ..core.limits import MAX_NAME_BYTES, MAX_START_NUMBER


def check_name_length(name: str, error: type[StudioError] = ExportError) -> None:
    """Refuse a name stem too long for a file name before any folder is made for it."""
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise error(f"The name {name[:40]}… is too long for a file name ({len(name)} characters; at most "
                    f"{MAX_NAME_BYTES} bytes).")


@dataclass(frozen=True)
class Naming:
    name: str
    separator: str  # ".", "_" or ""
    padding: int
    start_number: int
    extension: str = ".png"

    def file_name(self, index: int) -> str:
        """Name of the file at 0-based position `index` in the exported sequence."""
        return f"{self.name}{self.separator}{self.start_number + index:0{self.padding}d}{self.extension}"

    @property
    def pattern(self) -> str:
        return f"{self.name}{self.separator}{'#' * self.padding}{self.extension}"

    def matches(self, file_name: str) -> bool:
        """True for any file that a tool would read as part of this sequence."""
        regex = re.escape(self.name + self.separator) + r"\d+" + re.escape(self.extension)
        return re.fullmatch(regex, file_name, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Preset:
    separator: str
    padding: int
    start_number: int
    tool: str


PRESETS: dict[str, Preset] = {
    "opentoonz": Preset(".", 4, 1, "OpenToonz"),
    "aftereffects": Preset("_", 5, 1, "After Effects"),
    "nuke": Preset(".", 4, 1001, "Nuke"),
    "blender": Preset("", 4, 1, "Blender"),
    "krita": Preset("", 4, 0, "Krita"),
}
DEFAULT_PRESET = "opentoonz"

SEPARATORS = {".": ".", "_": "_", "none": "", "": ""}
_BAD_NAME_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def parse_separator(text: str) -> str:
    try:
        return SEPARATORS[text]
    except KeyError:
        raise ExportError(f"Unknown separator {text!r}: use '.', '_' or 'none'.") from None


def resolve_naming(name: str, preset: str | None = DEFAULT_PRESET, separator: str | None = None,
                   padding: int | None = None, start_number: int | None = None) -> Naming:
    """A preset's values, overridden by whatever is given explicitly; checked for validity."""
    preset_key = (preset or DEFAULT_PRESET).lower().replace(" ", "").replace("_", "")
    if preset_key not in PRESETS:
        raise ExportError(f"Unknown naming preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    base = PRESETS[preset_key]
    name = name.strip()
    if not name or _BAD_NAME_CHARS.search(name) or name in (".", ".."):
        raise ExportError(f"{name!r} cannot be used as a file name; avoid \\ / : * ? \" < > |.")
    check_name_length(name)
    sep = base.separator if separator is None else parse_separator(separator)
    pad = base.padding if padding is None else int(padding)
    start = base.start_number if start_number is None else int(start_number)
    if not 1 <= pad <= 10:
        raise ExportError(f"Padding must be between 1 and 10 digits, not {pad}.")
    if start < 0:
        raise ExportError(f"The first frame number cannot be negative ({start}).")
    if start > MAX_START_NUMBER:
        raise ExportError(f"The first frame number {start} is above the limit of {MAX_START_NUMBER:,}.")
    if sep == "" and name[-1].isdigit():
        raise ExportError(f"The name {name!r} ends with a digit and has no separator, so the frame numbers "
                          "would run into it; add a separator or change the name.")
    return Naming(name, sep, pad, start)
