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

import errno
import os
import re
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import MediaError
from ..core.fsio import check_regular_file
from ..core.limits import MAX_FRAME_PADDING, MAX_MISSING_FRAMES, MAX_SHOT_FRAMES
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
    """Frame numbers missing between the first and the last; refuses more than MAX_MISSING_FRAMES
    (counted before any list is made: 0001 and 9999999999 would otherwise list ten billion)."""
    if not numbers:
        return []
    ordered = sorted(set(numbers))
    missing = ordered[-1] - ordered[0] + 1 - len(ordered)
    if missing > MAX_MISSING_FRAMES:
        jump = max(zip(ordered, ordered[1:]), key=lambda pair: pair[1] - pair[0])
        raise MediaError(f"The sequence's frame numbers jump from {jump[0]} to {jump[1]}: {missing:,} frames are "
                         f"missing, more than the limit of {MAX_MISSING_FRAMES:,}. Is a stray file in the folder?")
    gaps: list[int] = []
    for before, after in zip(ordered, ordered[1:]):
        gaps.extend(range(before + 1, after))
    return gaps


def usable_file(path: Path, warnings: list[str]) -> bool:
    """Whether `path` is a regular file (following links); a link loop or a pipe is skipped with a warning."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            warnings.append(f"{path} is a link that leads to itself; it was skipped.")
        elif exc.errno == errno.ENOENT:
            warnings.append(f"{path} is a link to a file that does not exist; it was skipped.")
        else:
            warnings.append(f"{path} cannot be read ({exc.strerror or exc}); it was skipped.")
        return False
    if not stat.S_ISREG(mode):
        if not stat.S_ISDIR(mode):
            warnings.append(f"{path} is not a regular file (a pipe, a device or a socket); it was skipped.")
        return False
    return True


def _check_count(count: int, where: object) -> None:
    if count > MAX_SHOT_FRAMES:
        raise MediaError(f"{where} holds {count:,} frames, more than the limit of {MAX_SHOT_FRAMES:,} for a shot.")


def _describe_gaps(gaps: list[int]) -> str:
    shown = ", ".join(str(n) for n in gaps[:10])
    more = f" and {len(gaps) - 10} more" if len(gaps) > 10 else ""
    return f"{len(gaps)} frame{'s' if len(gaps) != 1 else ''} missing from the sequence: {shown}{more}."


def _display_pattern(name: NumberedName) -> str:
    return f"{name.prefix}{'#' * max(name.padding, 1)}{name.suffix}"


def _listing_from_series(folder: Path, entries: list[tuple[NumberedName, Path]],
                         warnings: list[str]) -> SequenceListing:
    _check_count(len(entries), folder)
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
    warnings: list[str] = []
    try:  # scandir: file types come with the listing, no stat per file (links are followed)
        with os.scandir(folder) as entries:
            paths = []
            for entry in entries:
                if not is_image_file(entry.name):
                    continue
                try:
                    regular = entry.is_file()
                except OSError:  # a link loop: is_file() raises instead of saying no
                    regular = False
                if regular:
                    paths.append(folder / entry.name)
                elif entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                    usable_file(folder / entry.name, warnings)  # a loop, a pipe...: says why it is skipped
    except OSError as exc:
        raise MediaError(f"The folder {folder} cannot be read: {exc.strerror or exc}.") from None
    if not paths:
        raise MediaError(f"The folder {folder} contains no images (PNG, JPEG, TIFF, WebP or BMP).")
    series, loose = _group_series(paths)
    if not series:
        _check_count(len(loose), folder)
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
    digits = token.group(0) if token.re is _HASHES else token.group(2) if token.re is _PRINTF else token.group(1)
    if token.re is _HASHES:
        width = len(digits)
    elif len(digits or "") > 3:  # %099999999999d: refused before any number is made of it
        width = MAX_FRAME_PADDING + 1
    elif token.re is _PRINTF:
        width = int(token.group(2) or 1) if token.group(1) else 1
    else:
        width = int(token.group(1) or 1)
    if width > MAX_FRAME_PADDING:
        raise MediaError(f"The pattern {pattern_name[:80]} asks for frame numbers of more than "
                         f"{MAX_FRAME_PADDING} digits.")
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
    warnings: list[str] = []
    for name in os.listdir(folder):
        match = regex.match(name)
        if match and not name.startswith(".") and usable_file(folder / name, warnings):
            digits = match.group("digits")
            entries.append((NumberedName("", int(digits), len(digits), ""), folder / name))
    if not entries:
        raise MediaError(f"No files match the pattern {pattern}.")
    listing = _listing_from_series(folder, entries, warnings)
    listing.pattern = display
    return listing


def list_numbered_file(path: Path) -> SequenceListing:
    """One file: the numbered series it belongs to in its folder, or the file alone."""
    parsed = parse_numbered(path.name)
    if parsed is None:
        return SequenceListing(path.parent, [path], None, [], [])
    siblings: list[tuple[NumberedName, Path]] = []
    warnings: list[str] = []
    for name in os.listdir(path.parent):
        other = parse_numbered(name) if is_image_file(name) else None
        if other is not None and other.series == parsed.series:
            # A padded series only takes names of its width (or wider numbers), as the tools do.
            if parsed.padding > 1 and other.padding != parsed.padding and len(str(other.number)) <= parsed.padding:
                continue
            if name == path.name or usable_file(path.parent / name, warnings):
                siblings.append((other, path.parent / name))
    return _listing_from_series(path.parent, siblings, warnings)


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
    if os.path.lexists(path):
        check_regular_file(path, MediaError, "image or folder")  # says what it is instead (a device, a loop)
    raise MediaError(f"{path} does not exist.")
