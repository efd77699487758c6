import numpy as np
import pytest

from tooncrafter_studio.engines.tooncrafter.timing import (
    MAX_PER_PASS,
    Timeline,
    flow_blend,
    plan_passes,
    select_frames,
    served_by,
    split_for_subpasses,
    trim_near_key_duplicates,
)


def _square_frames(n=16, size=(64, 96), start_x=10, speed=4):
    frames = []
    for k in range(n):
        img = np.full(size + (3,), 240, np.uint8)
        x = start_x + speed * k
        img[20:40, x:x + 16] = (200, 30, 30)
        frames.append(img)
    return frames


def _centroid_x(img):
    red = (img[..., 0] > 150) & (img[..., 1] < 100)
    return np.nonzero(red)[1].mean()


def test_pick_when_times_match_generated_frames():
    frames = _square_frames()
    times = [k / 15 for k in (1, 5, 14)]
    picked = select_frames(times, Timeline.nominal(), frames, blend=lambda a, b, w: pytest.fail("no blend"))
    for t, img in zip(times, picked):
        assert np.array_equal(img, frames[round(t * 15)])


def test_between_frames_uses_the_neighbours_with_motion():
    frames = _square_frames(speed=6)
    calls = []

    def spy(a, b, w):
        calls.append(w)
        return flow_blend(a, b, w)

    t = (3 + 0.5) / 15
    (img,) = select_frames([t], Timeline.nominal(), frames, blend=spy)
    assert calls == [pytest.approx(0.5)]
    # Motion-aware: the square sits half-way, not two half-transparent squares.
    assert _centroid_x(img) == pytest.approx((_centroid_x(frames[3]) + _centroid_x(frames[4])) / 2, abs=1.0)
    assert ((img[..., 0] > 150) & (img[..., 1] < 100)).sum() >= 0.8 * 16 * 20


def test_spacing_chart_times_are_served_in_order():
    spacing = pytest.importorskip("tooncrafter_studio.project.spacing")
    times = spacing.inbetween_times(5, "ease-in")
    frames = _square_frames()
    out = select_frames(times, Timeline.nominal(), frames)
    xs = [_centroid_x(f) for f in out]
    assert xs == sorted(xs)
    gaps = np.diff(xs)
    assert gaps[0] < gaps[-1]  # slow out of the first key


def test_up_to_14_is_one_pass():
    jobs = plan_passes([k / 15 for k in range(1, 15)])
    assert len(jobs) == 1 and jobs[0].children == ()
    jobs = plan_passes([0.1, 0.33, 0.5])
    assert len(jobs) == 1


@pytest.mark.parametrize("count", [15, 20, 29, 44, 100])
def test_more_than_14_needs_further_passes_between_generated_anchors(count):
    times = [(i + 1) / (count + 1) for i in range(count)]
    jobs = plan_passes(times)
    assert len(jobs) > 1
    assert jobs[0].start.pass_index is None and jobs[0].end.pass_index is None
    for job in jobs[1:]:
        assert job.start.pass_index is not None and job.end.pass_index is not None  # generated anchors
        assert job.start.time < job.end.time
        assert len(job.times) <= MAX_PER_PASS or job.children
        assert all(job.start.time < t < job.end.time for t in job.times)
    # Every time is served by a pass that makes it (no duplicates: each served once, distinct frames).
    leaves = [served_by(jobs, t) for t in times]
    for t, j in zip(times, leaves):
        job = jobs[j]
        assert not job.children or len(job.times) <= MAX_PER_PASS or any(
            abs(t - g) < 1e-6 for g in Timeline.nominal(job.start.time, job.end.time).times)


def test_balanced_split_wastes_no_pass_on_one_frame():
    times = [(i + 1) / 16 for i in range(15)]
    segments = split_for_subpasses(times, Timeline.nominal())
    sizes = [len(s.times) for s in segments]
    assert sum(sizes) == 15 and max(sizes) <= MAX_PER_PASS and min(sizes) >= 5


def test_dense_times_between_two_frames_recurse():
    times = list(np.linspace(0.01, 0.06, 30))
    jobs = plan_passes(times)
    assert len(jobs) >= 3 and any(j.parent not in (None, 0) for j in jobs)


def test_near_duplicates_at_keys_are_dropped_and_retimed():
    frames = _square_frames()
    frames[1] = frames[0].copy()
    frames[2] = frames[0].copy()
    frames[14] = frames[15].copy()
    tl = trim_near_key_duplicates(frames)
    assert tl.indices == (0,) + tuple(range(3, 14)) + (15,)
    assert tl.times[0] == 0.0 and tl.times[-1] == 1.0
    assert np.all(np.diff(tl.times) > 0)
    # Frame 3 (first motion) comes one step after the key, on an even spacing over 12 steps.
    assert tl.times[1] == pytest.approx(1 / 12)
    assert trim_near_key_duplicates(frames, threshold=0).indices == tuple(range(16))
    moving = _square_frames()
    assert trim_near_key_duplicates(moving).indices == tuple(range(16))


def test_real_timeline_used_for_planning():
    frames = _square_frames()
    frames[1] = frames[0].copy()
    tl = trim_near_key_duplicates(frames)
    times = [(i + 1) / 21 for i in range(20)]
    jobs = plan_passes(times, timeline_of=lambda job: tl if job.index == 0 else Timeline.nominal())
    assert all(j.start.frame != 1 and j.end.frame != 1 for j in jobs[1:])


def _fake_pass_maker(width=96):
    """A 'model' that draws a bar at the position given by the global time (anchors from images)."""
    calls = []

    def bar_x(img):
        return np.nonzero(img[0, :, 0] < 128)[0][0]

    def run_pass(job, start_img, end_img):
        calls.append(job)
        x0, x1 = bar_x(start_img), bar_x(end_img)
        frames = []
        for k in range(16):
            img = np.full((8, width, 3), 255, np.uint8)
            img[:, round(x0 + (x1 - x0) * k / 15)] = 0
            frames.append(img)
        return frames

    return run_pass, calls


def _bar(x, width=96):
    img = np.full((8, width, 3), 255, np.uint8)
    img[:, x] = 0
    return img


def test_execute_passes_serves_every_time_from_real_passes():
    from tooncrafter_studio.engines.tooncrafter.timing import execute_passes

    run_pass, calls = _fake_pass_maker(width=400)
    times = [(i + 1) / 31 for i in range(30)]
    blends = []

    def ideal_blend(a, b, w):  # moves the bar: what a motion-aware blend does
        blends.append(w)
        xa, xb = (np.nonzero(img[0, :, 0] < 128)[0][0] for img in (a, b))
        return _bar(round((1 - w) * xa + w * xb), 400)

    result, jobs = execute_passes(times, _bar(0, 400), _bar(300, 400), run_pass, blend=ideal_blend)
    assert len(calls) == len(jobs) > 1
    assert sorted(result) == sorted(times)
    xs = [np.nonzero(result[t][0, :, 0] < 128)[0][0] for t in times]
    assert all(b > a for a, b in zip(xs, xs[1:]))  # strictly moving: no duplicated frames
    assert len(blends) <= len(times)
    # Sub-pass anchors are frames of the parent pass, at their times.
    for job in jobs[1:]:
        assert job.start.pass_index == 0 and job.end.pass_index == 0


@pytest.mark.parametrize("use_flow_engine", [True, False])
def test_motion_blend_moves_the_square_with_or_without_the_flow_engine(monkeypatch, use_flow_engine):
    from tooncrafter_studio.engines.tooncrafter import timing

    if not use_flow_engine:
        import builtins

        real_import = builtins.__import__

        def no_flow(name, *args, **kwargs):
            if name.endswith("flow.warp") or (args and args[2] and "warp" in args[2] and name.endswith("flow")):
                raise ImportError("flow engine absent")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_flow)
    frames = _square_frames(speed=8)
    img = timing.motion_blend(frames[5], frames[6], 0.5)
    assert img.shape == frames[5].shape and img.dtype == np.uint8
    assert _centroid_x(img) == pytest.approx((_centroid_x(frames[5]) + _centroid_x(frames[6])) / 2, abs=1.5)
