"""What each timeline frame shows: holds, keys, takes laid over gaps, rejected frames held."""

from __future__ import annotations

from dataclasses import replace

from project_factories import make_shot, make_take

from tooncrafter_studio.project.commands import AddTake, CommandStack, SetActiveTake, SetFrameStatus
from tooncrafter_studio.project.document import ReviewStatus
from tooncrafter_studio.project.resolve import (
    ImageRef,
    cell_at,
    cell_starts,
    derived_count,
    key_spans,
    resolve_timeline,
    span_containing,
)


def test_holds_expand_to_one_entry_per_frame():
    shot = make_shot([2, 3, 1], keys=(0, 2))
    frames = resolve_timeline(shot)
    assert [f.frame for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [f.image.index for f in frames] == [0, 0, 1, 1, 1, 2]
    assert [f.new_drawing for f in frames] == [True, False, True, False, False, True]
    assert [f.kind for f in frames] == ["key", "key", "drawing", "drawing", "drawing", "key"]
    assert frames[2].label == "0002"


def test_cell_lookup_helpers():
    shot = make_shot([2, 3, 1])
    assert cell_starts(shot) == [1, 3, 6]
    assert cell_at(shot, 4) == (1, 3)
    assert cell_at(shot, 6) == (2, 6)
    for bad in (0, 7):
        try:
            cell_at(shot, bad)
        except IndexError:
            continue
        raise AssertionError(f"frame {bad} should be outside")


def test_derived_count_on_2s_and_3s():
    assert derived_count(8, 2) == 3
    assert derived_count(8, 1) == 7
    assert derived_count(9, 3) == 2
    assert derived_count(7, 2) == 3  # the last in-between is on for one frame
    assert derived_count(1, 2) == 0


def test_key_spans_and_span_containing():
    shot = make_shot([1] * 17, keys=(0, 8, 16))
    spans = key_spans(shot)
    assert [(s.key, s.start_frame, s.gap) for s in spans] == [(("d0001", "d0009"), 1, 8),
                                                              (("d0009", "d0017"), 9, 8)]
    assert span_containing(shot, 8).key == ("d0001", "d0009")
    assert span_containing(shot, 9).key == ("d0009", "d0017")
    assert span_containing(shot, 17) is None


def _shot_with_take(statuses):
    shot = make_shot([1] * 9, keys=(0, 8))
    CommandStack(shot).push(AddTake(make_take("tk", "d0001", "d0009", [2, 4, 6], statuses, label="A")))
    return shot


def test_active_take_overlays_the_gap_on_its_exposure_grid():
    shot = _shot_with_take([ReviewStatus.ACCEPTED] * 3)
    frames = resolve_timeline(shot)
    shown = [(f.image.kind, f.image.index) for f in frames]
    assert shown == [("source", 0), ("source", 0), ("take", 0), ("take", 0), ("take", 1), ("take", 1),
                     ("take", 2), ("take", 2), ("source", 8)]
    assert [f.new_drawing for f in frames] == [True, False, True, False, True, False, True, False, True]
    assert frames[2].kind == "inbetween" and frames[2].label == "A-1" and frames[2].take_id == "tk"
    assert frames[8].kind == "key"


def test_rejected_frame_holds_the_previous_picture_with_a_note():
    shot = _shot_with_take([ReviewStatus.ACCEPTED, ReviewStatus.REJECTED, ReviewStatus.ACCEPTED])
    frames = resolve_timeline(shot)
    assert frames[4].image == frames[2].image  # frame 5 holds in-between 1
    assert frames[4].status == ReviewStatus.REJECTED and not frames[4].new_drawing
    # ... but is labelled as itself, says what it holds, and keeps its own drawing for viewing on demand
    assert frames[4].label == "A-2" and frames[4].note == "A-2 rejected: holds A-1"
    assert frames[4].hidden == ImageRef("take", "tk", 1)
    assert frames[5] == replace(frames[4], frame=6)  # its hold (on 2s) is the same rejected frame
    assert frames[6].image.index == 2 and frames[6].hidden is None


def test_rejected_first_inbetween_holds_the_key():
    shot = _shot_with_take([ReviewStatus.REJECTED, ReviewStatus.ACCEPTED, ReviewStatus.ACCEPTED])
    frames = resolve_timeline(shot)
    assert frames[2].image == frames[0].image and frames[2].kind == "inbetween" and frames[2].label == "A-1"
    assert frames[2].note == "A-1 rejected: holds 0001"


def test_pending_frames_only_when_included():
    shot = _shot_with_take([ReviewStatus.PENDING, ReviewStatus.ACCEPTED, ReviewStatus.PENDING])
    with_pending = resolve_timeline(shot, include_pending=True)
    without = resolve_timeline(shot, include_pending=False)
    assert with_pending[2].image.kind == "take"
    assert without[2].image.kind == "source" and "pending, not included" in without[2].note
    assert without[4].image.index == 1 and without[6].image.index == 1  # the accepted one holds on


def test_no_active_take_shows_the_source_drawings():
    shot = _shot_with_take([ReviewStatus.ACCEPTED] * 3)
    stack = CommandStack(shot)
    stack.push(SetActiveTake(("d0001", "d0009"), None))
    assert [f.image.kind for f in resolve_timeline(shot)] == ["source"] * 9
    stack.undo()
    stack.push(SetFrameStatus("tk", [0], "rejected"))
    assert resolve_timeline(shot)[2].note
