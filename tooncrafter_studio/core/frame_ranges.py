"""The one parser of frame numbers and frame lists the user types ("5", "3,5,7", "3-7", "all", "1:9").

Every command that takes timeline frames from the user goes through here, so they all accept the
same text and refuse it the same way. Bounded before anything is expanded: each number is checked
against the shot (or MAX_SHOT_FRAMES) while it is still text, and the frames a list names are
counted before one of them is listed, so `1-1000000000` is refused at once without allocating, and
a long list of repeated ranges cannot make the parser loop for minutes. Digits are ASCII only: a
superscript or an Arabic-Indic digit is a clear error, not a surprise frame number.
"""

from __future__ import annotations

import re

from .errors import InputError
from .limits import MAX_FRAME_TEXT_CHARS, MAX_SHOT_FRAMES

_NUMBER = re.compile(r"[0-9]{1,12}")  # more digits than any frame number, few enough for int()
_RANGE = re.compile(r"([0-9]{1,12})-([0-9]{1,12})")
_EXAMPLE = "e.g. 5, 3,5,7 or 3-7"


def _check_bounds(frame: int, last: int) -> None:
    if frame < 1:
        raise InputError(f"Frame {frame} does not exist; frames are numbered from 1.")
    if frame > MAX_SHOT_FRAMES:
        raise InputError(f"Frame {frame} is beyond the limit of {MAX_SHOT_FRAMES:,} frames for a shot.")
    if frame > last:
        raise InputError(f"Frame {frame} is outside the shot (frames 1 to {last}).")


def parse_frame(text: str, last: int | None = None, what: str = "frame") -> int:
    """One timeline frame number, 1..last (last defaults to MAX_SHOT_FRAMES)."""
    limit = MAX_SHOT_FRAMES if last is None else min(int(last), MAX_SHOT_FRAMES)
    stripped = str(text).strip()
    if not _NUMBER.fullmatch(stripped):
        shown = stripped if len(stripped) <= 40 else stripped[:40] + "…"
        raise InputError(f"{what} '{shown}' is not a frame number (write it with the digits 0-9, e.g. 5).")
    frame = int(stripped)
    _check_bounds(frame, limit)
    return frame


def parse_frame_items(text: str, last: int | None = None, allow_all: bool = False) -> list[tuple[int, bool]]:
    """(frame, listed on its own) for each frame the text names, in order, without repeats.

    A frame inside a range is "not on its own": commands skip such a frame quietly where it does not
    apply (a key inside `review accept 3-7`), but refuse it when it was named alone.
    """
    limit = MAX_SHOT_FRAMES if last is None else min(int(last), MAX_SHOT_FRAMES)
    text = str(text)
    if len(text) > MAX_FRAME_TEXT_CHARS:
        raise InputError(f"The frame list is {len(text):,} characters long; the limit is {MAX_FRAME_TEXT_CHARS:,}.")
    if allow_all and text.strip().lower() == "all":
        return [(f, False) for f in range(1, limit + 1)]
    spans: list[tuple[int, int, bool]] = []
    named = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        shown = part if len(part) <= 40 else part[:40] + "…"
        single, span = _NUMBER.fullmatch(part), _RANGE.fullmatch(part)
        if single:
            first = end = int(part)
        elif span:
            first, end = int(span.group(1)), int(span.group(2))
            if end < first:
                raise InputError(f"'{shown}' is not a frame number or range: it runs backwards (write the lower "
                                 "frame first, e.g. 3-7).")
        else:
            hint = f"{_EXAMPLE}{' or all' if allow_all else ''}"
            raise InputError(f"'{shown}' is not a frame number or range ({hint}; digits 0-9).")
        _check_bounds(first, limit)
        _check_bounds(end, limit)
        named += end - first + 1  # counted before anything is expanded
        if named > MAX_SHOT_FRAMES:
            raise InputError(f"The list names more than {MAX_SHOT_FRAMES:,} frames (the most a shot has).")
        spans.append((first, end, bool(single)))
    if not spans:
        raise InputError("No frames were given; write them like 5, 3,5,7 or 3-7.")
    items: dict[int, bool] = {}
    for first, end, alone in spans:
        for frame in range(first, end + 1):
            items[frame] = items.get(frame, False) or alone
    return list(items.items())


def parse_frames(text: str, last: int | None = None) -> list[int]:
    """'1,9,17' or '1-5,9' -> the frame numbers (1-based), in order, without repeats."""
    return [frame for frame, _alone in parse_frame_items(text, last)]


def parse_frame_pair(text: str, last: int | None = None) -> tuple[int, int]:
    """'A:B' -> (A, B), two frame numbers of a key pair."""
    text = str(text)
    first, sep, second = text.partition(":")
    if not sep or not _NUMBER.fullmatch(first.strip()) or not _NUMBER.fullmatch(second.strip()):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise InputError(f"'{shown}' is not a key pair; write it as START:END with the digits 0-9, e.g. 1:9.")
    return parse_frame(first, last, "key pair start"), parse_frame(second, last, "key pair end")
