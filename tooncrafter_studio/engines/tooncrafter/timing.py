"""From the model's fixed 16 frames to the times the animator asked for.

One pass of the model between two anchor images makes 16 frames, the anchors' reconstructions
included, at local times k/15. This module, pure numpy and testable without the model:

- `trim_near_key_duplicates`: frames right after the first / right before the last anchor that
  barely differ from it would read as a pause at the key; they are dropped and the remaining
  frames re-timed over the pass (`Timeline`). Chains of keys then flow through the keys.
- `split_for_subpasses` / `plan_passes`: more than 14 in-betweens are made by further passes
  between generated frames of a pass (anchors), never by duplicating frames or cross-fading.
  A plan is data: a list of `PassJob`s (start anchor, end anchor, the requested times inside).
- `select_frames`: a frame per requested time, picked when it coincides with a generated frame,
  otherwise made from the two neighbouring generated frames by a motion-compensated blend
  (`motion_blend`: the flow engine's in-betweener, or the simpler `flow_blend` fallback; the two
  frames are 1/15 of the pass apart, so the motion between them is small).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

GENERATED_FRAMES = 16
MAX_PER_PASS = GENERATED_FRAMES - 2  # in-betweens one pass makes
TIME_EPS = 1e-6
DEFAULT_DUPLICATE_THRESHOLD = 0.006  # mean |difference| / 255 below which a frame repeats the key
MAX_TRIM_PER_SIDE = 3


@dataclass(frozen=True)
class Timeline:
    """The usable frames of one pass: indices into its 16 frames and their global times."""

    indices: tuple[int, ...]
    times: tuple[float, ...]

    @staticmethod
    def nominal(t0: float = 0.0, t1: float = 1.0, frames: int = GENERATED_FRAMES) -> Timeline:
        n = frames - 1
        return Timeline(tuple(range(frames)), tuple(t0 + (t1 - t0) * k / n for k in range(frames)))


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in [0, 1] on a reduced grey copy."""
    def grey(x: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(x[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
        scale = 128 / max(g.shape)
        if scale < 1:
            g = cv2.resize(g, (max(1, round(g.shape[1] * scale)), max(1, round(g.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        return g
    return float(np.mean(np.abs(grey(a) - grey(b)))) / 255.0


def trim_near_key_duplicates(frames: Sequence[np.ndarray], t0: float = 0.0, t1: float = 1.0,
                             threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
                             max_trim: int = MAX_TRIM_PER_SIDE) -> Timeline:
    """The timeline of a pass without the near-copies of its anchors at either end.

    Frames 1, 2, ... that differ from frame 0 by less than `threshold` (and symmetrically before
    the last frame) are dropped; motion then starts right after the start anchor: the last dropped
    frame's slot becomes the anchor's, and the kept frames are spread over [t0, t1] in proportion
    to their original indices. `threshold` 0 keeps every frame at its nominal time.
    """
    n = len(frames)
    lead = trail = 0
    if threshold > 0:
        while lead < max_trim and 1 + lead < n - 1 and _difference(frames[1 + lead], frames[0]) < threshold:
            lead += 1
        while (trail < max_trim and n - 2 - trail > lead
               and _difference(frames[n - 2 - trail], frames[n - 1]) < threshold):
            trail += 1
    first, last = lead, n - 1 - trail  # the slots where the anchors effectively sit
    span = last - first
    indices = [0] + list(range(lead + 1, n - 1 - trail)) + [n - 1]
    times = [t0] + [t0 + (t1 - t0) * (i - first) / span for i in indices[1:-1]] + [t1]
    return Timeline(tuple(indices), tuple(times))


# --- passes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of a parent pass between its usable frames `start` and `end` (timeline positions)."""

    start: int
    end: int
    times: tuple[float, ...]  # requested times strictly inside


def _strictly_inside(times: Sequence[float], lo: float, hi: float) -> list[float]:
    return [t for t in times if lo + TIME_EPS < t < hi - TIME_EPS]


def split_for_subpasses(times: Sequence[float], timeline: Timeline,
                        max_per_pass: int = MAX_PER_PASS) -> list[Segment]:
    """Choose anchors among the parent's frames so each stretch holds at most about a pass's worth.

    Only stretches containing requested times are returned (each becomes one further pass);
    times that coincide with a parent frame are served by that frame. Stretches are balanced
    (about N / ceil(N / max_per_pass) times each) rather than greedy-full, so no pass is spent on
    one leftover frame. A stretch between two adjacent parent frames may still hold more than
    `max_per_pass`; it is split again inside its own pass.
    """
    tl = timeline.times
    wanted = _strictly_inside(times, tl[0], tl[-1])
    wanted = [t for t in wanted if all(abs(t - g) > TIME_EPS for g in tl)]
    if not wanted:
        return []
    target = math.ceil(len(wanted) / math.ceil(len(wanted) / max_per_pass))
    segments: list[Segment] = []
    i = 0
    last = len(tl) - 1
    while i < last:
        j = i + 1
        while j < last and len(_strictly_inside(wanted, tl[i], tl[j + 1])) <= target:
            j += 1
        inside = _strictly_inside(wanted, tl[i], tl[j])
        if inside:
            segments.append(Segment(i, j, tuple(inside)))
        i = j
    return segments


@dataclass(frozen=True)
class Anchor:
    """An anchor image of a pass: a key (`pass_index` None; frame 0 = start key, 1 = end key) or a
    generated frame (`frame` is the index among the 16 frames of pass `pass_index`)."""

    time: float
    pass_index: int | None
    frame: int


@dataclass(frozen=True)
class PassJob:
    index: int
    start: Anchor
    end: Anchor
    times: tuple[float, ...]  # requested times this pass (or its own further passes) must serve
    parent: int | None = None
    children: tuple[int, ...] = field(default=())


def plan_passes(times: Sequence[float], max_per_pass: int = MAX_PER_PASS,
                timeline_of: Callable[[PassJob], Timeline] | None = None) -> list[PassJob]:
    """Every pass needed for `times` (in (0, 1)) between the two keys, parents before children.

    `timeline_of(job)` gives the usable frames of a finished pass; by default the nominal k/15
    times (the plan before anything ran). The engine plans level by level with the real
    timelines (after near-duplicate trimming) using the same `split_for_subpasses`.
    """
    timeline_of = timeline_of or (lambda job: Timeline.nominal(job.start.time, job.end.time))
    root = PassJob(0, Anchor(0.0, None, 0), Anchor(1.0, None, 1), tuple(sorted(times)))
    jobs: list[PassJob] = [root]
    k = 0
    while k < len(jobs):
        job = jobs[k]
        if len(job.times) > max_per_pass:
            timeline = timeline_of(job)
            children = []
            for seg in split_for_subpasses(job.times, timeline, max_per_pass):
                child = PassJob(len(jobs), Anchor(timeline.times[seg.start], job.index, timeline.indices[seg.start]),
                                Anchor(timeline.times[seg.end], job.index, timeline.indices[seg.end]),
                                seg.times, parent=job.index)
                jobs.append(child)
                children.append(child.index)
            jobs[k] = PassJob(job.index, job.start, job.end, job.times, job.parent, tuple(children))
        k += 1
    return jobs


def served_by(jobs: Sequence[PassJob], t: float) -> int:
    """The pass whose frames give time t: the deepest pass whose requested times include it."""
    best = 0
    for job in jobs:
        if any(abs(t - s) <= TIME_EPS for s in job.times):
            best = job.index
    return best


# --- frames ---------------------------------------------------------------------------------------

Blend = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def select_frames(times: Sequence[float], timeline: Timeline, frames: Sequence[np.ndarray],
                  blend: Blend | None = None) -> list[np.ndarray]:
    """A frame for each time in [timeline start, end] from a pass's 16 `frames`."""
    blend = blend or motion_blend
    tl = timeline.times
    out = []
    for t in times:
        if not (tl[0] - TIME_EPS <= t <= tl[-1] + TIME_EPS):
            raise ValueError(f"time {t} outside the pass [{tl[0]}, {tl[-1]}]")
        i = max(0, min(len(tl) - 2, int(np.searchsorted(tl, t, side="right")) - 1))
        a, b = tl[i], tl[i + 1]
        if abs(t - a) <= TIME_EPS:
            out.append(np.array(frames[timeline.indices[i]], copy=True))
        elif abs(t - b) <= TIME_EPS:
            out.append(np.array(frames[timeline.indices[i + 1]], copy=True))
        else:
            w = (t - a) / (b - a)
            out.append(blend(frames[timeline.indices[i]], frames[timeline.indices[i + 1]], w))
    return out


def motion_blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """The flow engine's in-betweener (occlusion-aware splatting) between two generated frames,
    or `flow_blend` when it is unavailable or fails."""
    try:
        from ..flow.warp import SegmentInterpolator

        frame = SegmentInterpolator(a, b).frame(w)
        if frame.shape == a.shape and frame.dtype == a.dtype:
            return frame
    except Exception:  # the flow engine is optional here; the fallback is always there
        log.debug("Flow engine in-betweener unavailable; using the simple flow blend", exc_info=True)
    return flow_blend(a, b, w)


def flow_blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """A frame at fraction `w` from `a` to `b`: both warped along optical flow to the moment, then mixed.

    Dense DIS flow at a reduced size (neighbouring generated frames move little), each image
    sampled backwards along the scaled flow at the target pixel (the usual linear-motion
    approximation), mixed by time. Where the flow is wrong this degrades to a blend of two
    near-identical frames, never to a cross-fade of the keys.
    """
    h, w_px = a.shape[:2]
    scale = min(1.0, 320 / max(h, w_px))
    size = (max(8, round(w_px * scale)), max(8, round(h * scale)))
    ga = cv2.resize(cv2.cvtColor(a[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    gb = cv2.resize(cv2.cvtColor(b[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    f_ab = dis.calc(ga, gb, None)
    f_ba = dis.calc(gb, ga, None)

    def full(flow: np.ndarray) -> np.ndarray:
        up = cv2.resize(flow, (w_px, h), interpolation=cv2.INTER_LINEAR)
        return up * np.array([w_px / size[0], h / size[1]], dtype=np.float32)

    f_ab, f_ba = full(f_ab), full(f_ba)
    gx, gy = np.meshgrid(np.arange(w_px, dtype=np.float32), np.arange(h, dtype=np.float32))
    # The content at x at time w came from a at x - w·F_ab and goes to b at x - (1-w)·F_ba.
    warp_a = cv2.remap(a, gx - w * f_ab[..., 0], gy - w * f_ab[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    warp_b = cv2.remap(b, gx - (1 - w) * f_ba[..., 0], gy - (1 - w) * f_ba[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    mixed = (1 - w) * warp_a.astype(np.float32) + w * warp_b.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(mixed), info.min, info.max).astype(a.dtype)
    return mixed.astype(a.dtype)


# --- running a plan -------------------------------------------------------------------------------

RunPass = Callable[[PassJob, np.ndarray, np.ndarray], Sequence[np.ndarray]]
TimelineOf = Callable[[PassJob, Sequence[np.ndarray]], Timeline]


def execute_passes(times: Sequence[float], start: np.ndarray, end: np.ndarray, run_pass: RunPass,
                   timeline_of: TimelineOf | None = None, max_per_pass: int = MAX_PER_PASS,
                   blend: Blend | None = None) -> tuple[dict[float, np.ndarray], list[PassJob]]:
    """Run the passes `times` need, level by level, and return a frame per time and the jobs run.

    `run_pass(job, start_image, end_image)` makes the pass's 16 frames; further passes take their
    anchors from the frames of the pass they split, at the positions of its real timeline
    (`timeline_of(job, frames)`, e.g. after near-duplicate trimming; nominal by default).
    """
    timeline_of = timeline_of or (lambda job, frames: Timeline.nominal(job.start.time, job.end.time, len(frames)))
    root = PassJob(0, Anchor(0.0, None, 0), Anchor(1.0, None, 1), tuple(sorted(times)))
    jobs: list[PassJob] = [root]
    made: dict[int, Sequence[np.ndarray]] = {}
    result: dict[float, np.ndarray] = {}
    k = 0
    while k < len(jobs):
        job = jobs[k]

        def anchor_image(anchor: Anchor) -> np.ndarray:
            if anchor.pass_index is None:
                return start if anchor.frame == 0 else end
            return np.asarray(made[anchor.pass_index][anchor.frame])

        frames = run_pass(job, anchor_image(job.start), anchor_image(job.end))
        made[job.index] = frames
        timeline = timeline_of(job, frames)
        delegated: set[float] = set()
        children = []
        if len(job.times) > max_per_pass:
            for seg in split_for_subpasses(job.times, timeline, max_per_pass):
                child = PassJob(len(jobs), Anchor(timeline.times[seg.start], job.index, timeline.indices[seg.start]),
                                Anchor(timeline.times[seg.end], job.index, timeline.indices[seg.end]),
                                seg.times, parent=job.index)
                jobs.append(child)
                children.append(child.index)
                delegated.update(seg.times)
        jobs[k] = PassJob(job.index, job.start, job.end, job.times, job.parent, tuple(children))
        own = [t for t in job.times if t not in delegated]
        for t, frame in zip(own, select_frames(own, timeline, frames, blend)):
            result[t] = frame
        k += 1
    return result, jobs
