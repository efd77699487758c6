"""The one frame-list parser: what it accepts, what it refuses, and that a huge range is refused
before anything is expanded (memory stays small, measured with tracemalloc)."""

from __future__ import annotations

import tracemalloc

import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.core.frame_ranges import (
    parse_frame,
    parse_frame_items,
    parse_frame_pair,
    parse_frames,
)
from tooncrafter_studio.core.limits import MAX_SHOT_FRAMES


def test_lists_ranges_and_all():
    assert parse_frames("1,9,17") == [1, 9, 17]
    assert parse_frames(" 1-3 , 9,2 ") == [1, 2, 3, 9]
    assert parse_frame_items("2-4,3", 10) == [(2, False), (3, True), (4, False)]
    assert parse_frame_items("all", 3, allow_all=True) == [(1, False), (2, False), (3, False)]
    assert parse_frame_pair("1:9") == (1, 9)
    assert parse_frame(" 7 ", 10) == 7


@pytest.mark.parametrize("text, words", [
    ("²", "not a frame number"),  # a superscript: str.isdigit() says yes, int() says no
    ("３", "not a frame number"),  # a full-width digit: int() would accept it
    ("١-٣", "not a frame number"),  # Arabic-Indic digits
    ("1_000", "not a frame number"),  # int() accepts underscores
    ("5-1", "runs backwards"),
    ("1--5", "not a frame number"),
    ("-3", "not a frame number"),
    ("0", "numbered from 1"),
    ("9" * 5000, "not a frame number"),
    ("1e9", "not a frame number"),
    (",", "No frames"),
    ("all", "not a frame number"),  # only where the command allows it
    ("11", "outside the shot (frames 1 to 10)"),
    (f"1-{MAX_SHOT_FRAMES + 1}", "beyond the limit"),
    (",".join(["1-10"] * (MAX_SHOT_FRAMES // 10 + 1)), "more than"),
])
def test_refused(text, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_frame_items(text, 10)


def test_a_list_longer_than_any_sensible_one_is_refused_unread():
    with pytest.raises(InputError, match="characters long"):
        parse_frames("1," * 60_000)


@pytest.mark.parametrize("text", ["1-1000000000", "1-100000,1-100000", ",".join(["1-99999"] * 2000)])
def test_huge_ranges_are_refused_before_anything_is_expanded(text):
    tracemalloc.start()
    try:
        with pytest.raises(InputError):
            parse_frame_items(text)  # bounded by the limit of a shot, not by a small shot
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < (1 << 20) + 4 * len(text), peak  # the text's own split parts, nothing per frame


def test_pair_and_single_frames_use_the_same_rules():
    for bad in ("a:b:c", "1", "1:²", "1:0"):
        with pytest.raises(InputError):
            parse_frame_pair(bad)
    with pytest.raises(InputError, match="--add frame"):
        parse_frame("²", 10, "--add frame")
