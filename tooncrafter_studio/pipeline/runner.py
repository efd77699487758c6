"""run_job: one generation, the same for the CLI and the GUI worker.

Stages reported through the progress callback:
  load      reading the two keys (and loading the engine)     steps: 2
  generate  the engine's work; its own events are forwarded with their stage in
            `extra["engine_stage"]` and message                steps: the engine's
  write     writing the take's PNG files                      steps: one per frame

Cancel (the token, or a callback raising Cancelled, or Ctrl-C) stops the work and leaves nothing
half-written: frames go into `takes/.tmp-<take id>/` inside the project and that folder is renamed
to `takes/<take id>/` only when every frame is on disk; on any failure it is removed.

A project job's result becomes a new Take of its segment through the AddTake command, so it can
be undone. `run_job(..., project=project)` pushes it at once (CLI); the GUI runs the job in a worker
without the project and calls `apply_result` on the GUI thread, which owns the project. The job
itself holds only a reservation of the take id, released on every path (failure, cancel, applied).
A redo-rejected job (`jobs.redo_rejected_job`) makes a take of the kept frames plus the new ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import EngineUnavailable, ProjectError, StudioError
from ..core.fsio import fsync_dir
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, StageReporter, no_progress
from ..engines.base import Engine, EngineCapabilities, InterpolationRequest
from ..media.imageio import read_image, write_png
from ..media.importer import conform, read_frame
from ..project.commands import AddTake
from ..project.document import Take, TakeFrame
from ..project.orphan_takes import write_take_manifest
from ..project.project import TAKES_DIR, TEMP_PREFIX, Project
from ..project.serialize import check_internal_path, relative_if_inside
from .engines import build_engine
from .jobs import Job, KeyRef

log = logging.getLogger(__name__)

FRAME_NAME = "{:04d}.png"


class EngineFailure(StudioError):
    """An engine returned something other than what the interface promises."""


@dataclass
class JobResult:
    job: Job
    frames: list[np.ndarray]
    seed: int
    info: dict[str, Any]
    take: Take | None = None  # project jobs
    seconds: float = 0.0
    applied: bool = False
    files: list[Path] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # redo-rejected: frames identical to the rejected ones


def draw_seed() -> int:
    """A fresh seed from the OS (not from any global random state)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def first_seed(capabilities: EngineCapabilities) -> int:
    """The seed of a job that names none: the engine's default result where it has one (the flow
    engine's best in-betweens are seed 0; other seeds are its alternatives), else a fresh seed."""
    return capabilities.default_seed if capabilities.default_seed is not None else draw_seed()


def json_safe(value: Any) -> Any:
    """Provenance values as plain JSON (numpy scalars and arrays, tuples, paths...)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist()) if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _load_key(ref: KeyRef, job: Job) -> np.ndarray:
    if ref.image is not None:
        image = ref.image
    else:
        assert ref.source is not None
        image = read_frame(ref.source, ref.index, job.folder)
    return conform(image, job.has_alpha, job.bit_depth)


def check_engine(engine: Engine) -> None:
    """Raise EngineUnavailable with the engine's own reason when it cannot run here."""
    probe = engine.probe()
    if not probe.available:
        reason = (probe.reason or "no reason given").rstrip().rstrip(".")  # reasons are sentences
        raise EngineUnavailable(f"The {engine.label or engine.id} engine is not available: {reason}.")


def _forwarding(progress: ProgressCallback) -> ProgressCallback:
    def forward(event: ProgressEvent) -> None:
        message = f"{event.stage}: {event.message}" if event.message else event.stage
        progress(ProgressEvent("generate", event.done, event.total, message, event.eta_s, event.preview,
                               {**event.extra, "engine_stage": event.stage}))
    return forward


def _check_frames(engine: Engine, frames: list[np.ndarray], job: Job, like: np.ndarray) -> None:
    if len(frames) != len(job.times):
        raise EngineFailure(f"The {engine.id} engine returned {len(frames)} frames for {len(job.times)} times.")
    for i, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.shape != like.shape or frame.dtype != like.dtype:
            got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise EngineFailure(f"The {engine.id} engine returned frame {i + 1} as {got}, "
                                f"expected {like.shape} {like.dtype}.")


def check_take_location(job: Job) -> None:
    """Refuse, before any work, to write a take where the project would then refuse to read it: a
    takes/ folder (or take folder) that is a link leading outside the project. A link that stays
    inside the project is read and written alike."""
    if job.segment is None or job.folder is None or job.take_id is None:
        return
    for relative in (f"{TAKES_DIR}/{job.take_id}/{FRAME_NAME.format(1)}",
                     f"{TAKES_DIR}/{TEMP_PREFIX}{job.take_id}/{FRAME_NAME.format(1)}"):
        try:
            check_internal_path(relative, job.folder)
        except ValueError as exc:
            raise ProjectError(f"Cannot write the take into {job.folder / TAKES_DIR}: {exc}; generated frames must "
                               "stay inside the project folder (replace the link with a real folder).") from None


def _same_as_rejected(job: Job, frames: list[np.ndarray]) -> list[int]:
    """Indices of redrawn frames that came back pixel-identical to the drawing the user rejected
    (an engine with few variants can land on the same one): the caller must say so, never hide it."""
    same = []
    for i, (relative, frame) in enumerate(zip(job.redone_files, frames)):
        try:
            old = read_image(job.folder / relative) if job.folder is not None else None
        except StudioError:  # a missing or unreadable old file: nothing to compare with
            continue
        if old is not None and old.shape == frame.shape and np.array_equal(old, frame):
            same.append(i)
    return same


def _write_take(job: Job, frames: list[np.ndarray], progress: ProgressCallback, cancel: CancelToken,
                take: Take | None = None) -> Path:
    """Write frames (and the take's manifest, take.json) into a temporary folder, then rename it into
    takes/<id>/ in one step: a take folder is complete, and says what it is, or does not exist."""
    assert job.folder is not None and job.take_id is not None
    check_take_location(job)
    takes = job.folder / TAKES_DIR
    final = takes / job.take_id
    temp = takes / f"{TEMP_PREFIX}{job.take_id}"
    if final.exists():
        raise StudioError(f"{final} already exists; the take cannot be written there.")
    reporter = StageReporter(progress, cancel, "write", len(frames))
    reporter.start(f"writing {len(frames)} frames")
    made_takes = not takes.exists()
    try:
        temp.mkdir(parents=True, exist_ok=False)
        for i, frame in enumerate(frames):
            write_png(temp / FRAME_NAME.format(i + 1), frame, error=StudioError)
            reporter.step(message=FRAME_NAME.format(i + 1))
        if take is not None:  # what a project that never listed it (the app was killed) can add back
            write_take_manifest(temp, take)
        os.replace(temp, final)
        fsync_dir(takes)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(temp)
        if made_takes:  # leave the project as it was: no empty takes/ either
            with contextlib.suppress(OSError):
                takes.rmdir()
        raise
    return final


def run_job(job: Job, engine: Engine | None = None, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None, project: Project | None = None) -> JobResult:
    """Run one job synchronously; see the module docstring. Raises Cancelled when cancelled.

    `engine`: a configured engine (default: built from the job's engine id and parameters).
    `project`: add the take to it at once (else the caller calls `apply_result` later)."""
    progress = progress or no_progress
    cancel = cancel or CancelToken()
    started = time.monotonic()
    try:
        check_take_location(job)
        engine = engine or build_engine(job.engine_id, job.params)
        check_engine(engine)

        load = StageReporter(progress, cancel, "load", 2)
        load.start("reading the keys")
        start = _load_key(job.start, job)
        load.step(message="start key")
        end = _load_key(job.end, job)
        load.step(message="end key")
        engine.load(progress, cancel)
        cancel.raise_if_cancelled()

        seed = job.seed if job.seed is not None else first_seed(engine.capabilities)
        request = InterpolationRequest(start, end, list(job.times), {**job.params, **_sketch_params(job, engine)},
                                       seed, job.prompt)
        request.validate()
        progress(ProgressEvent("generate", 0, len(job.times), f"{engine.id}: {len(job.times)} in-betweens"))
        result = engine.interpolate(request, _forwarding(progress), cancel)
        cancel.raise_if_cancelled()
        _check_frames(engine, result.frames, job, start)
        progress(ProgressEvent("generate", len(job.times), len(job.times), "done"))

        info = json_safe(result.info)
        outcome = JobResult(job, list(result.frames), seed, info)
        outcome.unchanged = _same_as_rejected(job, outcome.frames)
        if job.segment is not None:
            take = _make_take(job, engine, seed, info)
            folder = _write_take(job, outcome.frames, progress, cancel, take)
            outcome.files = [folder / FRAME_NAME.format(i + 1) for i in range(len(outcome.frames))]
            outcome.take = take
        outcome.seconds = time.monotonic() - started
    except BaseException:
        job.release()
        raise
    if project is not None and outcome.take is not None:
        apply_result(outcome, project)
    return outcome


def _sketch_params(job: Job, engine: Engine) -> dict[str, Any]:
    """The segment's sketches as request params (read now), for engines that take them."""
    if not job.sketches:
        return {}
    if not getattr(engine, "accepts_sketches", False):
        log.info("The %s engine ignores sketches (only ToonCrafter uses them).", engine.id)
        return {}
    from ..engines.sketch import Sketch
    from ..media.imageio import read_image

    sketches = [Sketch(s.time, read_image(s.path), s.name or s.path.name, s.sha256) for s in job.sketches]
    return {"sketches": sketches, "sketch_scale": job.sketch_scale}


def _make_take(job: Job, engine: Engine, seed: int, info: dict[str, Any]) -> Take:
    assert job.segment is not None and job.take_id is not None
    frames = [TakeFrame(f"{TAKES_DIR}/{job.take_id}/{FRAME_NAME.format(i + 1)}", offset, float(t))
              for i, (offset, t) in enumerate(zip(job.offsets, job.times))]
    if job.kept_frames:  # redo-rejected: the kept frames of the old take, by position
        frames = sorted([*job.kept_frames, *frames], key=lambda tf: tf.offset)
    params = {
        "times": [float(t) for t in job.times],
        "offsets": list(job.offsets),
        "spacing": job.spacing,
        "count": len(job.times),
        "count_mode": job.count_mode,
        "exposure": job.exposure,
        "gap": job.gap,
        "engine_params": json_safe(job.params),
        "prompt": job.prompt,
        "keys": {
            "start": {"drawing": job.start.drawing_id, "frame": job.start.frame,
                      "source": job.start.source.id if job.start.source else None, "source_frame": job.start.index},
            "end": {"drawing": job.end.drawing_id, "frame": job.end.frame,
                    "source": job.end.source.id if job.end.source else None, "source_frame": job.end.index},
        },
        "engine_info": info,
    }
    if job.sketches:  # provenance of the guidance, whatever the engine made of it
        params["sketches"] = [{"offset": f.offset, "time": f.time, "file": relative_if_inside(str(f.path), job.folder)
                               if job.folder else str(f.path), "sha256": f.sha256, "name": f.name}
                              for f in job.sketches]
        params["sketch_scale"] = job.sketch_scale
        params["sketches_used"] = bool(getattr(engine, "accepts_sketches", False))
    if job.kept_from:
        params["kept_from_take"] = job.kept_from
        params["redrawn_offsets"] = list(job.offsets)
    identity = json_safe({**engine.identity(), "engine": engine.id})
    return Take(id=job.take_id, start_key=job.segment[0], end_key=job.segment[1], frames=frames,
                engine=identity, params=params, seed=seed,
                created=datetime.now(UTC).isoformat(timespec="seconds"))


def next_take_label(project: Project, start_key: str, end_key: str) -> str:
    """T1, T2, ... per key pair; never reuses the number of a take that was removed."""
    segment = project.shot.segments.get((start_key, end_key))
    if segment is None:
        return "T1"
    numbers = [segment.takes_made, len(segment.take_ids)]  # takes_made remembers removed takes
    for take_id in segment.take_ids:
        label = project.shot.takes[take_id].label
        if label[:1] == "T" and label[1:].isdigit():
            numbers.append(int(label[1:]))
    return f"T{max(numbers) + 1}"


def apply_result(result: JobResult, project: Project, activate: bool = True) -> None:
    """Add the result's take to `project` (undoable). Call on the thread that owns the project."""
    if result.take is None:
        raise StudioError("This job made no take to add to a project.")
    if result.applied:
        return
    reservation = result.job.reservation
    if reservation is not None and reservation.project_file not in (None, project.project_file):
        result.job.release()
        raise StudioError("This take was made for another project; it was not added.")
    take = result.take
    if not take.label:
        take.label = next_take_label(project, take.start_key, take.end_key)
    try:
        project.push(AddTake(take, activate=activate))
    finally:
        result.job.release()  # once in the history, the stack keeps its files alive
    result.applied = True
