"""Every command: do, undo, redo; the stack: merging, macros, the clean index, notifications."""

from __future__ import annotations

import copy

import pytest
from project_factories import make_shot, make_take

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.project.commands import (
    AddTake,
    Change,
    CommandStack,
    Compound,
    DeleteFrames,
    InsertFrames,
    RemoveTake,
    RenameTake,
    SetActiveTake,
    SetExposure,
    SetFrameStatus,
    SetKeys,
    SetSegmentSettings,
    SetShotProperties,
    SetTakeStatus,
    segment_settings,
)
from tooncrafter_studio.project.document import ReviewStatus, Spacing
from tooncrafter_studio.project.resolve import key_spans


def _round_trip(shot, command):
    """Push, check it changed something, undo to the exact old state, redo to the exact new state."""
    stack = CommandStack(shot)
    before = copy.deepcopy(shot)
    stack.push(command)
    after = copy.deepcopy(shot)
    assert after != before
    stack.undo()
    assert shot == before
    stack.redo()
    assert shot == after
    return stack


def _lengths(shot):
    return [c.length for c in shot.cells]


def test_set_keys_by_frame_and_undo(shot):
    stack = _round_trip(shot, SetKeys.at_frames(shot, [5], True))
    assert shot.drawings["d0005"].is_key
    assert [(s.start_frame, s.gap) for s in key_spans(shot)] == [(1, 4), (5, 4), (9, 8)]
    stack.undo()
    assert [(s.start_frame, s.gap) for s in key_spans(shot)] == [(1, 8), (9, 8)]


def test_remove_key(shot):
    _round_trip(shot, SetKeys.at_frames(shot, [9], False))
    assert [(s.start_frame, s.gap) for s in key_spans(shot)] == [(1, 16)]


def test_set_key_inside_a_hold_keys_the_held_drawing():
    shot = make_shot([4, 4])
    SetKeys.at_frames(shot, [3], True).do(shot)
    assert shot.drawings["d0001"].is_key and not shot.drawings["d0002"].is_key


def test_set_key_outside_the_shot_is_refused(shot):
    with pytest.raises(InputError, match="Frame 40 is outside the shot"):
        SetKeys.at_frames(shot, [40], True)


def test_exposure_and_undo(shot):
    stack = _round_trip(shot, SetExposure.at_frames(shot, [2, 3, 4], 2))
    assert _lengths(shot)[:5] == [1, 2, 2, 2, 1]
    assert shot.frame_count == 20
    stack.undo()
    assert shot.frame_count == 17


@pytest.mark.parametrize("length", [0, -1, 20_000])
def test_bad_exposure_changes_nothing(shot, length):
    before = copy.deepcopy(shot)
    with pytest.raises(InputError):
        CommandStack(shot).push(SetExposure([0], length))
    assert shot == before


def test_exposure_drag_merges_into_one_undo_step(shot):
    stack = CommandStack(shot)
    for length in (2, 3, 4, 5):
        stack.push(SetExposure([0], length, merge_id="drag-exposure"))
    assert len(stack) == 1 and _lengths(shot)[0] == 5
    stack.undo()
    assert _lengths(shot)[0] == 1
    stack.redo()
    assert _lengths(shot)[0] == 5


def test_merge_stops_after_break(shot):
    stack = CommandStack(shot)
    stack.push(SetExposure([0], 2, merge_id="drag"))
    stack.break_merge()
    stack.push(SetExposure([0], 3, merge_id="drag"))
    assert len(stack) == 2
    stack.undo()
    assert _lengths(shot)[0] == 2


def test_insert_frames_extends_the_hold(shot):
    stack = _round_trip(shot, InsertFrames(5, 3))
    assert _lengths(shot)[4] == 4 and shot.frame_count == 20
    # keys after the insert moved by 3 frames
    assert [(s.start_frame, s.gap) for s in key_spans(shot)] == [(1, 11), (12, 8)]
    stack.undo()
    assert shot.frame_count == 17


def test_insert_after_the_last_frame_holds_the_last_drawing(shot):
    _round_trip(shot, InsertFrames(18, 2))
    assert _lengths(shot)[-1] == 3


def test_delete_frames_shortens_and_removes_cells():
    shot = make_shot([2, 3, 2, 1], keys=(0, 3))
    stack = _round_trip(shot, DeleteFrames(2, 3))  # frame 2 (of cell 0) and frames 3-4 (of cell 1)
    assert [(c.drawing_id, c.length) for c in shot.cells] == [("d0001", 1), ("d0002", 1), ("d0003", 2),
                                                               ("d0004", 1)]
    stack.push(DeleteFrames(2, 1))  # the whole of cell d0002
    assert [c.drawing_id for c in shot.cells] == ["d0001", "d0003", "d0004"]
    stack.undo()
    stack.undo()
    assert _lengths(shot) == [2, 3, 2, 1]


@pytest.mark.parametrize("frame,count,message", [(0, 1, "outside"), (17, 2, "outside"),
                                                 (1, 17, "at least one frame"), (3, 0, "Cannot delete")])
def test_bad_delete_is_refused(shot, frame, count, message):
    before = copy.deepcopy(shot)
    with pytest.raises(InputError, match=message):
        CommandStack(shot).push(DeleteFrames(frame, count))
    assert shot == before


def test_segment_settings_created_then_removed_by_undo(shot):
    key = ("d0001", "d0009")
    stack = _round_trip(shot, SetSegmentSettings(key, count=5, spacing="ease-in", seed=42))
    settings = segment_settings(shot, key)
    assert (settings.count, settings.spacing, settings.seed) == (5, Spacing.EASE_IN, 42)
    stack.undo()
    assert key not in shot.segments
    assert segment_settings(shot, key).count is None


def test_segment_settings_merge_keeps_one_step(shot):
    key = ("d0001", "d0009")
    stack = CommandStack(shot)
    stack.push(SetSegmentSettings(key, prompt="a"))
    stack.push(SetSegmentSettings(key, merge_id="seed", seed=1))
    stack.push(SetSegmentSettings(key, merge_id="seed", seed=2))
    assert len(stack) == 2 and shot.segments[key].settings.seed == 2
    stack.undo()
    assert shot.segments[key].settings.seed is None and shot.segments[key].settings.prompt == "a"
    stack.redo()
    assert shot.segments[key].settings.seed == 2


@pytest.mark.parametrize("changes,message", [
    ({"count": 0}, "count"), ({"exposure": 0}, "exposure"), ({"spacing": "wobbly"}, "Unknown spacing"),
    ({"spacing": "explicit"}, "needs a list of times"), ({"times": [0.5, 0.2]}, "increase"),
    ({"times": [0.0, 0.5]}, "outside"), ({"seed": -3}, "seed"),
])
def test_bad_segment_settings_change_nothing(shot, changes, message):
    before = copy.deepcopy(shot)
    with pytest.raises(InputError, match=message):
        CommandStack(shot).push(SetSegmentSettings(("d0001", "d0009"), **changes))
    assert shot == before


def test_unknown_setting_name_is_refused():
    with pytest.raises(InputError, match="Unknown segment setting 'colour'"):
        SetSegmentSettings(("a", "b"), colour="red")


def test_add_take_activates_it_and_undo_hides_it(shot):
    key = ("d0001", "d0009")
    stack = CommandStack(shot)
    first = make_take("ta", *key, [2, 4, 6])
    stack.push(AddTake(first))
    before = copy.deepcopy(shot)
    stack.push(AddTake(make_take("tb", *key, [2, 4, 6])))
    assert shot.segments[key].take_ids == ["ta", "tb"] and shot.segments[key].active_take == "tb"
    stack.undo()
    assert shot == before and "tb" not in shot.takes
    assert stack.referenced_take_ids() == {"ta", "tb"}  # a redo can bring tb back: keep its files
    stack.undo()
    assert key not in shot.segments and not shot.takes


def test_add_take_without_activating(shot):
    key = ("d0001", "d0009")
    stack = CommandStack(shot)
    stack.push(AddTake(make_take("ta", *key, [2])))
    stack.push(AddTake(make_take("tb", *key, [2]), activate=False))
    assert shot.segments[key].active_take == "ta"


def test_add_take_refuses_duplicates_and_unknown_keys(shot):
    stack = CommandStack(shot)
    stack.push(AddTake(make_take("ta", "d0001", "d0009", [2])))
    with pytest.raises(InputError, match="already has a take"):
        stack.push(AddTake(make_take("ta", "d0001", "d0009", [2])))
    with pytest.raises(InputError, match="not a drawing"):
        stack.push(AddTake(make_take("tz", "d0001", "nope", [2])))


def _shot_with_takes(shot):
    stack = CommandStack(shot)
    key = ("d0001", "d0009")
    for take_id in ("ta", "tb", "tc"):
        stack.push(AddTake(make_take(take_id, *key, [2, 4, 6])))
    return CommandStack(shot), key


def test_active_take(shot):
    _stack, key = _shot_with_takes(shot)
    _round_trip(shot, SetActiveTake(key, "ta"))
    assert shot.segments[key].active_take == "ta"
    _round_trip(shot, SetActiveTake(key, None))
    with pytest.raises(InputError, match="does not belong"):
        SetActiveTake(key, "zz").do(shot)


def test_frame_status_and_take_status(shot):
    _stack, key = _shot_with_takes(shot)
    _round_trip(shot, SetFrameStatus("tc", [1], ReviewStatus.REJECTED))
    assert [f.status for f in shot.takes["tc"].frames] == ["pending", "rejected", "pending"]
    _round_trip(shot, SetTakeStatus("tc", "accepted"))
    assert all(f.status == ReviewStatus.ACCEPTED for f in shot.takes["tc"].frames)
    with pytest.raises(InputError, match="has no frame 9"):
        SetFrameStatus("tc", [8], "accepted").do(shot)
    with pytest.raises(ValueError):
        SetFrameStatus("tc", [0], "maybe")


def test_take_status_undo_restores_mixed_statuses(shot):
    _stack, _key = _shot_with_takes(shot)
    stack = CommandStack(shot)
    stack.push(SetFrameStatus("tc", [0], "accepted"))
    stack.push(SetFrameStatus("tc", [2], "rejected"))
    stack.push(SetTakeStatus("tc", "accepted"))
    stack.undo()
    assert [f.status for f in shot.takes["tc"].frames] == ["accepted", "pending", "rejected"]


def test_remove_take_falls_back_and_undo_restores_order(shot):
    _stack, key = _shot_with_takes(shot)
    stack = _round_trip(shot, RemoveTake("tc"))
    assert shot.segments[key].take_ids == ["ta", "tb"] and shot.segments[key].active_take == "tb"
    stack.push(RemoveTake("ta"))
    stack.undo()
    assert shot.segments[key].take_ids == ["ta", "tb"]
    assert "tc" in stack.referenced_take_ids()


def test_rename_take(shot):
    _shot_with_takes(shot)
    _round_trip(shot, RenameTake("tb", "  good one "))
    assert shot.takes["tb"].label == "good one"


def test_shot_properties(shot):
    _round_trip(shot, SetShotProperties(name="run", fps=12))
    assert (shot.name, shot.fps) == ("run", 12.0)
    for bad in (SetShotProperties(fps=0), SetShotProperties(fps=float("nan")), SetShotProperties(name=" ")):
        with pytest.raises(InputError):
            bad.do(shot)
    assert (shot.name, shot.fps) == ("run", 12.0)


def test_compound_rolls_back_when_a_part_fails(shot):
    before = copy.deepcopy(shot)
    bad = Compound("both", [SetExposure([0], 3), SetExposure([0], 0)])
    with pytest.raises(InputError):
        CommandStack(shot).push(bad)
    assert shot == before


def test_macro_is_one_undo_step(shot):
    stack = CommandStack(shot)
    before = copy.deepcopy(shot)
    with stack.macro("Retime to 2s"):
        stack.push(SetExposure([1, 2, 3], 2))
        stack.push(SetKeys(["d0003"], True))
    assert len(stack) == 1 and stack.undo_label == "Retime to 2s"
    stack.undo()
    assert shot == before
    stack.redo()
    assert shot.drawings["d0003"].is_key and _lengths(shot)[1] == 2


def test_macro_with_an_error_undoes_its_part(shot):
    stack = CommandStack(shot)
    before = copy.deepcopy(shot)
    with pytest.raises(InputError):
        with stack.macro("half"):
            stack.push(SetExposure([1], 4))
            stack.push(SetExposure([1], 0))
    assert shot == before and len(stack) == 0


def test_clean_index_tracks_saved_state(shot):
    stack = CommandStack(shot)
    assert stack.is_clean
    stack.push(SetExposure([0], 2))
    assert not stack.is_clean
    stack.set_clean()
    stack.push(SetExposure([0], 3))
    stack.undo()
    assert stack.is_clean
    stack.undo()
    assert not stack.is_clean
    stack.push(SetKeys(["d0002"], True))  # the saved state is now unreachable
    assert stack.clean_index == -1 and not stack.is_clean


def test_merging_into_the_saved_state_marks_it_unreachable(shot):
    stack = CommandStack(shot)
    stack.push(SetExposure([0], 2, merge_id="drag"))
    stack.set_clean()
    stack.push(SetExposure([0], 3, merge_id="drag"))  # set_clean closed the merge window
    assert len(stack) == 2
    stack.undo()
    assert stack.is_clean


def test_listeners_receive_what_changed(shot):
    stack = CommandStack(shot)
    changes: list[Change] = []
    states: list[bool] = []
    stack.add_listener(changes.append)
    stack.add_state_listener(lambda: states.append(stack.can_undo))
    stack.push(SetExposure([0], 2))
    stack.push(SetKeys(["d0003"], True))
    stack.undo()
    assert changes[0] == Change(timeline=True)
    assert changes[1].keys and changes[1].drawings == {"d0003"}
    assert changes[2].keys and not changes[2].timeline
    assert states == [True, True, True]
    assert stack.revision == 3


def test_labels_and_limits(shot):
    stack = CommandStack(shot, limit=2)
    stack.push(SetExposure([0], 2))
    stack.push(InsertFrames(1, 1))
    stack.push(SetKeys(["d0002"], True))
    assert len(stack) == 2 and stack.undo_label == "Set key"
    stack.undo()
    assert stack.redo_label == "Set key" and stack.undo_label == "Insert 1 frame"
    stack.undo()
    assert not stack.can_undo and stack.undo() == Change()
