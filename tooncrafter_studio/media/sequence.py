"""Finding the frames of an image sequence: folders, patterns, numbered files, drag-in lists.

Accepted forms:
- a folder: its image files; the largest numbered series wins (others are reported);
- a pattern: `name.####.png`, `name_%04d.png`, `name.$F4.png` (any folder part is taken literally);
- one numbered file (`name_0007.png`): the whole series it belongs to;
- one image, or a list of files (drag-in): a numbered series when they form one, else loose
  images in natural order.

Only names are listed here; pixels are never decoded (see importer.py for the header checks).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import MediaError
from .imageio import IMAGE_EXTENSIONS

# The frame number is the last run of digits in the stem: name.0001, name_0001, name0001, 0001,
# and also name_0001_comp (the text after the number becomes part of the series' suffix).
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<rest>\D*)$")
_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HOUDINI = re.compile(r"\$F(\d*)")


@dataclass(frozen=True)
class NumberedName:
    prefix: str  # everything before the frame number, separator included ("name.")
    number: int
    padding: int  # digits as written ("0007" -> 4)
    suffix: str  # text after the number plus the extension, lower case ("_comp.png")

    @property
    def series(self) -> tuple[str, str]:
        return (self.prefix, self.suffix)


@dataclass
class SequenceListing:
    folder: Path
    files: list[Path]  # in frame order
    numbers: list[int] | None  # frame numbers (None for loose images)
    gaps: list[int] = field(default_factory=list)  # missing frame numbers
    warnings: list[str] = field(default_factory=list)
    pattern: str = ""  # display form, e.g. "walk.####.png"

    @property
    def numbered(self) -> bool:
        return self.numbers is not None


def natural_key(text: str) -> list:
    """Sort key that orders "frame2" before "frame10"."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text)]


def is_image_file(path: str | os.PathLike) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def parse_numbered(name: str) -> NumberedName | None:
    stem, ext = os.path.splitext(name)
    match = _NUMBERED.match(stem)
    if not match:
        return None
    digits = match.group("digits")
    return NumberedName(match.group("prefix"), int(digits), len(digits), (match.group("rest") + ext).lower())


def find_gaps(numbers: list[int]) -> list[int]:
    if not numbers:
        return []
    present = set(numbers)
    return [n for n in range(min(numbers), max(numbers) + 1) if n not in present]


def _describe_gaps(gaps: list[int]) -> str:
    shown = ", ".join(str(n) for n in gaps[:10])
    more = f" and {len(gaps) - 10} more" if len(gaps) > 10 else ""
    return f"{len(gaps)} frame{'s' if len(gaps) != 1 else ''} missing from the sequence: {shown}{more}."


def _display_pattern(name: NumberedName) -> str:
    return f"{name.prefix}{'#' * max(name.padding, 1)}{name.suffix}"


def _listing_from_series(folder: Path, entries: list[tuple[NumberedName, Path]],
                         warnings: list[str]) -> SequenceListing:
    entries = sorted(entries, key=lambda e: (e[0].number, natural_key(e[1].name)))
    seen: dict[int, Path] = {}
    for parsed, path in entries:
        if parsed.number in seen:  # frame_1.png and frame_001.png: two files claim one frame
            raise MediaError(f"{path} and {seen[parsed.number]} both claim frame {parsed.number}; "
                             "remove one of them.")
        seen[parsed.number] = path
    numbers = [parsed.number for parsed, _ in entries]
    gaps = find_gaps(numbers)
    if gaps:
        warnings.append(_describe_gaps(gaps))
    return SequenceListing(folder, [path for _, path in entries], numbers, gaps, warnings,
                           _display_pattern(entries[0][0]))


def _group_series(paths: list[Path]) -> tuple[dict[tuple[str, str], list[tuple[NumberedName, Path]]],
                                                list[Path]]:
    series: dict[tuple[str, str], list[tuple[NumberedName, Path]]] = defaultdict(list)
    loose: list[Path] = []
    for path in paths:
        parsed = parse_numbered(path.name)
        if parsed is None:
            loose.append(path)
        else:
            series[parsed.series].append((parsed, path))
    return series, loose


def list_folder(folder: Path) -> SequenceListing:
    try:  # scandir: file types come with the listing, no stat per file
        with os.scandir(folder) as entries:
            paths = [folder / e.name for e in entries if is_image_file(e.name) and e.is_file()]
    except OSError as exc:
        raise MediaError(f"The folder {folder} cannot be read: {exc.strerror or exc}.") from None
    if not paths:
        raise MediaError(f"The folder {folder} contains no images (PNG, JPEG, TIFF, WebP or BMP).")
    series, loose = _group_series(paths)
    warnings: list[str] = []
    if not series:
        return SequenceListing(folder, sorted(loose, key=lambda p: natural_key(p.name)), None, [], warnings)
    best_key = max(series, key=lambda k: (len(series[k]), k))
    others = len(paths) - len(series[best_key])
    if others:
        warnings.append(f"{others} other image{'s' if others != 1 else ''} in {folder} "
                        f"{'are' if others != 1 else 'is'} not part of the sequence "
                        f"{_display_pattern(series[best_key][0][0])} and {'were' if others != 1 else 'was'} "
                        "left out.")
    return _listing_from_series(folder, series[best_key], warnings)


def pattern_regex(pattern_name: str) -> tuple[re.Pattern[str], str] | None:
    """A regex for a file-name pattern with `####`, `%04d`/`%d` or `$F4`; None when it has none.

    `#` count and `%04d` fix the padding for names that are zero-padded; a wider number still
    matches (frame 10000 of a `####` sequence), as compositing tools read it.
    """
    for token_re in (_HASHES, _PRINTF, _HOUDINI):
        matches = list(token_re.finditer(pattern_name))
        if matches:
            token = matches[-1]
            break
    else:
        return None
    if token.re is _HASHES:
        width = len(token.group(0))
    elif token.re is _PRINTF:
        width = int(token.group(2) or 1) if token.group(1) else 1
    else:
        width = int(token.group(1) or 1)
    before, after = pattern_name[:token.start()], pattern_name[token.end():]
    digits = rf"(?P<digits>\d{{{width},}})" if width > 1 else r"(?P<digits>\d+)"
    regex = re.compile("^" + re.escape(before) + digits + re.escape(after) + "$", re.IGNORECASE)
    return regex, before + "#" * width + after


def list_pattern(pattern: Path) -> SequenceListing:
    parsed = pattern_regex(pattern.name)
    if parsed is None:
        raise MediaError(f"{pattern} is not a sequence pattern (use name.####.png or name.%04d.png).")
    regex, display = parsed
    folder = pattern.parent
    if not folder.is_dir():
        raise MediaError(f"The folder {folder} does not exist.")
    entries: list[tuple[NumberedName, Path]] = []
    for name in os.listdir(folder):
        match = regex.match(name)
        if match and not name.startswith("."):
            digits = match.group("digits")
            entries.append((NumberedName("", int(digits), len(digits), ""), folder / name))
    if not entries:
        raise MediaError(f"No files match the pattern {pattern}.")
    listing = _listing_from_series(folder, entries, [])
    listing.pattern = display
    return listing


def list_numbered_file(path: Path) -> SequenceListing:
    """One file: the numbered series it belongs to in its folder, or the file alone."""
    parsed = parse_numbered(path.name)
    if parsed is None:
        return SequenceListing(path.parent, [path], None, [], [])
    siblings: list[tuple[NumberedName, Path]] = []
    for name in os.listdir(path.parent):
        other = parse_numbered(name) if is_image_file(name) else None
        if other is not None and other.series == parsed.series:
            # A padded series only takes names of its width (or wider numbers), as the tools do.
            if parsed.padding > 1 and other.padding != parsed.padding and len(str(other.number)) <= parsed.padding:
                continue
            siblings.append((other, path.parent / name))
    return _listing_from_series(path.parent, siblings, [])


def list_files(paths: list[Path]) -> SequenceListing:
    """Dropped files: one numbered series when they form one, otherwise loose images in natural order."""
    if not paths:
        raise MediaError("No files were given.")
    for path in paths:
        if not path.is_file():
            raise MediaError(f"{path} does not exist or is not a file.")
    folders = {p.parent for p in paths}
    series, loose = _group_series(paths)
    if len(folders) == 1 and not loose and len(series) == 1:
        return _listing_from_series(paths[0].parent, next(iter(series.values())), [])
    ordered = sorted(paths, key=lambda p: (natural_key(str(p.parent)), natural_key(p.name)))
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return SequenceListing(common, ordered, None, [], [])


def list_sequence(path_or_paths: str | os.PathLike | list) -> SequenceListing:
    """Resolve any accepted input form to an ordered list of files (see the module docstring)."""
    if isinstance(path_or_paths, (list, tuple)):
        paths = [Path(p) for p in path_or_paths]
        if len(paths) == 1:
            return list_sequence(paths[0])
        return list_files(paths)
    path = Path(path_or_paths)
    if path.is_dir():
        return list_folder(path)
    if path.is_file():
        return list_numbered_file(path)
    if pattern_regex(path.name) is not None:
        return list_pattern(path)
    raise MediaError(f"{path} does not exist.")
