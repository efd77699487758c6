"""The job runner: times and offsets, takes with provenance, progress, cancel leaving no files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_factories import BlendEngine, WrongCountEngine, frame_image, make_project

from tooncrafter_studio.core.errors import Cancelled, EngineUnavailable, InputError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.media import read_image
from tooncrafter_studio.pipeline.jobs import image_job, parse_pair, plan_inbetweens, segment_job
from tooncrafter_studio.pipeline.runner import EngineFailure, apply_result, run_job
from tooncrafter_studio.project.commands import RemoveTake, SetExposure, SetSegmentSettings
from tooncrafter_studio.project.document import SegmentSettings
from tooncrafter_studio.project.project import Project
from tooncrafter_studio.project.resolve import key_spans, resolve_timeline

KEY = ("d0001", "d0009")


# ------------------------------------------------------------------ planning


def test_derived_count_sits_on_the_exposure_grid():
    plan = plan_inbetweens(8, SegmentSettings(exposure=2))
    assert plan.count_mode == "derived" and plan.offsets == [2, 4, 6]
    assert plan.times == pytest.approx([0.25, 0.5, 0.75])
    assert plan_inbetweens(9, SegmentSettings(exposure=3)).offsets == [3, 6]
    assert plan_inbetweens(8, SegmentSettings(exposure=1)).offsets == list(range(1, 8))


def test_hand_count_is_spread_evenly():
    assert plan_inbetweens(8, SegmentSettings(count=3)).offsets == [2, 4, 6]
    assert plan_inbetweens(8, SegmentSettings(), count=2).offsets == [3, 5]
    assert plan_inbetweens(10, SegmentSettings(), count=3).offsets == [3, 5, 8]
    assert plan_inbetweens(5, SegmentSettings(), count=4).offsets == [1, 2, 3, 4]
    offsets = plan_inbetweens(13, SegmentSettings(), count=6).offsets
    assert offsets == sorted(set(offsets)) and 1 <= offsets[0] and offsets[-1] <= 12


def test_spacing_and_explicit_times():
    eased = plan_inbetweens(8, SegmentSettings(exposure=2), spacing="ease-in")
    assert eased.offsets == [2, 4, 6] and eased.times[0] < 0.25 and eased.times == sorted(eased.times)
    explicit = plan_inbetweens(8, SegmentSettings(spacing="explicit", times=[0.1, 0.2, 0.9]))
    assert explicit.count_mode == "explicit" and explicit.times == [0.1, 0.2, 0.9] and explicit.offsets == [2, 4, 6]
    two = plan_inbetweens(8, SegmentSettings(), times=[0.3, 0.6])
    assert two.offsets == [3, 5]


def test_offsets_by_hand():
    plan = plan_inbetweens(8, SegmentSettings(), times=[0.3, 0.7], offsets=[3, 6])
    assert plan.offsets == [3, 6] and plan.times == [0.3, 0.7]


@pytest.mark.parametrize("gap,settings,kwargs,message", [
    (8, SegmentSettings(), {"times": [0.3], "offsets": [3, 5]}, "2 frame positions"),
    (8, SegmentSettings(), {"times": [0.3, 0.6], "offsets": [5, 3]}, "must increase"),
    (8, SegmentSettings(), {"times": [0.3, 0.6], "offsets": [3, 8]}, "must increase"),
    (1, SegmentSettings(), {}, "no in-between fits"),
    (4, SegmentSettings(), {"count": 4}, "do not fit"),
    (8, SegmentSettings(), {"spacing": "wobble"}, "Unknown spacing"),
    (8, SegmentSettings(), {"times": [0.5, 0.4]}, "increase"),
    (8, SegmentSettings(), {"count": 0}, "at least 1"),
])
def test_bad_plans_are_refused(gap, settings, kwargs, message):
    with pytest.raises(InputError, match=message):
        plan_inbetweens(gap, settings, **kwargs)


def test_parse_pair(tmp_path):
    shot = make_project(tmp_path).shot
    assert parse_pair(shot, "1:9").key == KEY
    assert parse_pair(shot, "9:17").key == ("d0009", "d0017")
    with pytest.raises(InputError, match="not neighbouring keys"):
        parse_pair(shot, "1:17")
    with pytest.raises(InputError, match=r"Frame 4 is not a key \(keys are at frames 1, 9, 17\)"):
        parse_pair(shot, "1:4")
    with pytest.raises(InputError, match="outside the shot"):
        parse_pair(shot, "9:40")
    with pytest.raises(InputError, match="START:END"):
        parse_pair(shot, "1-9")


# ------------------------------------------------------------------ running


def test_run_job_makes_an_undoable_take_with_provenance(tmp_path):
    project = make_project(tmp_path)
    engine = BlendEngine()
    events = []
    job = segment_job(project, KEY, seed=1234, prompt="a walk")
    result = run_job(job, engine, events.append, project=project)

    take = project.shot.takes[job.take_id]
    assert result.take is take and result.applied and project.modified
    assert project.shot.segments[KEY].active_take == take.id and take.label == "T1"
    assert [f.offset for f in take.frames] == [2, 4, 6]
    assert [f.file for f in take.frames] == [f"takes/{take.id}/000{i}.png" for i in (1, 2, 3)]
    assert take.seed == 1234 and engine.requests[0].seed == 1234 and engine.requests[0].prompt == "a walk"
    assert take.engine == {"engine": "test-blend", "version": "1.2", "model": "none", "model_hash": "abc"}
    assert take.params["times"] == pytest.approx([0.25, 0.5, 0.75]) and take.params["offsets"] == [2, 4, 6]
    assert take.params["keys"]["start"]["frame"] == 1 and take.params["keys"]["end"]["frame"] == 9
    assert take.params["engine_info"] == {"seed": 1234, "note": 0.5}
    assert take.created.endswith("+00:00")

    # the files hold the engine's frames
    first = read_image(project.folder / take.frames[0].file)
    expected = np.round(frame_image(0) * 0.75 + frame_image(8) * 0.25).astype(np.uint8)
    assert np.array_equal(first, expected)
    assert np.array_equal(result.frames[0], expected)

    # the timeline shows the take; undo hides it but keeps the files
    assert resolve_timeline(project.shot)[2].image.kind == "take"
    project.undo()
    assert take.id not in project.shot.takes and (project.folder / take.frames[0].file).exists()
    project.redo()
    project.save()
    reopened = Project.open(project.folder)
    assert reopened.shot.takes[take.id] == take
    json.dumps(reopened.to_dict())


def test_progress_has_stages_in_order_with_step_counts(tmp_path):
    project = make_project(tmp_path)
    events = []
    run_job(segment_job(project, KEY), BlendEngine(), events.append, project=project)
    stages = [e.stage for e in events]
    assert stages[0] == "load" and stages[-1] == "write"
    order = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert order == ["load", "generate", "write"]
    load = [(e.done, e.total) for e in events if e.stage == "load"]
    assert load == [(0, 2), (1, 2), (2, 2)]
    write = [(e.done, e.total) for e in events if e.stage == "write"]
    assert write == [(0, 3), (1, 3), (2, 3), (3, 3)]
    forwarded = [e for e in events if e.extra.get("engine_stage") == "blend"]
    assert [e.done for e in forwarded] == [0, 1, 2, 3] and forwarded[1].message == "blend: 1"


def test_no_seed_draws_a_fresh_one_and_records_it(tmp_path):
    project = make_project(tmp_path)
    seeds = set()
    for _ in range(3):
        engine = BlendEngine()
        result = run_job(segment_job(project, KEY), engine, project=project)
        assert result.take.seed == engine.requests[0].seed == result.seed
        seeds.add(result.seed)
    assert len(seeds) == 3
    assert [project.shot.takes[t].label for t in project.shot.segments[KEY].take_ids] == ["T1", "T2", "T3"]


def test_segment_settings_drive_the_job(tmp_path):
    project = make_project(tmp_path)
    project.push(SetSegmentSettings(KEY, count=2, spacing="ease-out", seed=7, prompt="hop",
                                    params={"strength": 3}))
    job = segment_job(project, KEY, params={"extra": 1})
    assert job.offsets == [3, 5] and job.seed == 7 and job.prompt == "hop" and job.spacing == "ease-out"
    assert job.params == {"strength": 3, "extra": 1} and job.count_mode == "hand"
    result = run_job(job, BlendEngine(), project=project)
    assert result.take.params["engine_params"] == {"strength": 3, "extra": 1}


def test_jobs_follow_the_current_gap(tmp_path):
    project = make_project(tmp_path)
    project.push(SetExposure([2], 3))  # frame 3 held for 3 frames: the keys are now 10 frames apart
    span = key_spans(project.shot)[0]
    job = segment_job(project, span)
    assert job.gap == 10 and job.offsets == [2, 4, 6, 8]


def test_cancel_during_generation_leaves_no_files(tmp_path):
    project = make_project(tmp_path)
    cancel = CancelToken()
    job = segment_job(project, KEY)
    steps = len(project.stack)
    with pytest.raises(Cancelled):
        run_job(job, BlendEngine(cancel_at=1), cancel=cancel, project=project)
    assert not (project.folder / "takes").exists() or not any((project.folder / "takes").iterdir())
    assert not project.shot.takes and len(project.stack) == steps and not project.modified
    assert job.take_id not in project._reserved


def test_cancel_during_writing_removes_the_partial_take(tmp_path):
    project = make_project(tmp_path)
    cancel = CancelToken()

    def progress(event):
        if event.stage == "write" and event.done == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_job(segment_job(project, KEY), BlendEngine(), progress, cancel, project=project)
    assert not (project.folder / "takes").exists()  # not even an empty takes/ is left behind
    assert not project.shot.takes and not project.modified


def test_a_failing_write_removes_the_partial_take(tmp_path, monkeypatch):
    from tooncrafter_studio.core.errors import StudioError
    from tooncrafter_studio.pipeline import runner

    project = make_project(tmp_path)
    calls = []

    def flaky_write(path, array, error=None):
        calls.append(path)
        if len(calls) == 2:
            raise StudioError("The disk is full: could not write it.")
        path.write_bytes(b"x")

    monkeypatch.setattr(runner, "write_png", flaky_write)
    with pytest.raises(StudioError, match="disk is full"):
        run_job(segment_job(project, KEY), BlendEngine(), project=project)
    assert not (project.folder / "takes").exists()  # not even an empty takes/ is left behind


def test_cancel_before_start(tmp_path):
    project = make_project(tmp_path)
    cancel = CancelToken()
    cancel.cancel()
    engine = BlendEngine()
    with pytest.raises(Cancelled):
        run_job(segment_job(project, KEY), engine, cancel=cancel, project=project)
    assert engine.requests == []


def test_unavailable_engine_says_why(tmp_path):
    project = make_project(tmp_path)
    with pytest.raises(EngineUnavailable, match="Test blend engine is not available: no tiny GPU"):
        run_job(segment_job(project, KEY), BlendEngine(available=False), project=project)


def test_engine_returning_too_few_frames_is_caught(tmp_path):
    project = make_project(tmp_path)
    with pytest.raises(EngineFailure, match="returned 2 frames for 3 times"):
        run_job(segment_job(project, KEY), WrongCountEngine(), project=project)
    assert not project.shot.takes


def test_registered_engine_is_found_by_id(tmp_path):
    from tooncrafter_studio.engines.registry import register_engine, unregister_engine

    project = make_project(tmp_path)
    register_engine("test-blend", BlendEngine)
    try:
        result = run_job(segment_job(project, KEY, engine="test-blend"), project=project)
    finally:
        unregister_engine("test-blend")
    assert result.take.engine["engine"] == "test-blend"


def test_gui_style_apply_later(tmp_path):
    project = make_project(tmp_path)
    result = run_job(segment_job(project, KEY), BlendEngine())
    assert not project.shot.takes and result.take is not None
    assert result.take.id in project._reserved  # garbage collection leaves the folder alone meanwhile
    assert project.collect_garbage() == []
    apply_result(result, project)
    apply_result(result, project)  # once only
    assert list(project.shot.takes) == [result.take.id] and not project._reserved


def test_take_numbers_are_not_reused_after_a_removal(tmp_path):
    project = make_project(tmp_path)
    for _ in range(2):
        run_job(segment_job(project, KEY), BlendEngine(), project=project)
    project.push(RemoveTake(project.shot.segments[KEY].take_ids[0]))
    run_job(segment_job(project, KEY), BlendEngine(), project=project)
    assert [project.shot.takes[t].label for t in project.shot.segments[KEY].take_ids] == ["T2", "T3"]


def test_alpha_keys_keep_alpha(tmp_path):
    project = make_project(tmp_path, alpha=True)
    result = run_job(segment_job(project, KEY), BlendEngine(), project=project)
    image = read_image(project.folder / result.take.frames[0].file)
    assert image.shape == (24, 32, 4) and int(image[0, 0, 3]) == 128


def test_loose_image_job_returns_frames_without_writing(tmp_path):
    job = image_job(frame_image(0), frame_image(8), [0.5])
    result = run_job(job, BlendEngine())
    assert result.take is None and len(result.frames) == 1 and result.frames[0].shape == (24, 32, 3)
    assert list(tmp_path.iterdir()) == []


def test_a_job_without_a_seed_gets_the_flow_engines_default_result(tmp_path):
    """The flow engine's seeds pick alternatives (issue 11); a first take must be its best result
    (seed 0), not an alternative picked by a randomly drawn seed."""
    from tooncrafter_studio.engines.flow.engine import FlowEngine

    project = make_project(tmp_path)
    first = run_job(segment_job(project, KEY), FlowEngine(), project=project)
    assert first.seed == 0 and first.take.seed == 0
    assert first.info.get("variant") == "default"
    rolled = run_job(segment_job(project, KEY, seed=3), FlowEngine(), project=project)
    assert rolled.seed == 3 and rolled.info.get("variant") != "default"
    assert any(not np.array_equal(a, b) for a, b in zip(first.frames, rolled.frames))
