"""Generation from the window: jobs made on the UI thread, run by the one worker, applied back as
undoable AddTake commands on the UI thread (the pipeline's `run_job(apply=False)` + `apply_result`).

Engines are created and used only inside tasks, so only on the worker thread; they are kept
between jobs (a loaded model is not reloaded for every segment). Engine probes run on a small
pool of their own, so the window opens before any CUDA or model check.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import StudioError
from ..core.paths import find_model
from ..core.progress import CancelToken, ProgressCallback
from ..core.settings import Settings
from ..engines.base import Engine, ProbeResult
from ..engines.registry import create_engine, engine_ids
from ..pipeline.jobs import Job, segment_job
from ..pipeline.runner import JobResult, apply_result, draw_seed, run_job
from ..project.document import ReviewStatus
from ..project.resolve import SegmentSpan
from .session import Session
from .worker import Task, Worker, track_pool

log = logging.getLogger(__name__)


def configure_engine(engine: Engine, settings: Settings) -> Engine:
    """Hand the app settings that decide availability (model file, device, memory) to an engine."""
    configure = getattr(engine, "configure", None)
    if configure is None:
        return engine
    options: dict[str, Any] = {"memory": settings.memory_mode}
    if settings.model_path:
        options["model"] = settings.model_path
    if settings.device in ("cuda", "mps", "cpu"):
        options["device"] = settings.device
    try:
        configure(options)
    except StudioError as exc:
        log.warning("Engine %s refused the settings: %s", engine.id, exc)
    return engine


def model_identity(settings: Settings) -> dict[str, Any] | None:
    """Path, size and cheap fingerprint of the model file the settings lead to (None: no file found).
    Reads a few MB at most, and imports torch (through the checkpoint module) when it is installed:
    call it off the UI thread."""
    path, _looked = find_model(settings.model_path)
    if path is None:
        return None
    from ..engines.tooncrafter.engine import model_fingerprint  # the same identity a take records

    try:
        return model_fingerprint(path)
    except OSError as exc:
        return {"file": str(path), "error": f"cannot be read ({exc.strerror or exc})"}


class _ProbeSignals(QObject):
    done = Signal(object, object)  # {id: ProbeResult}, {id: capabilities}
    identity = Signal(object, object)  # model path setting, model_identity() result


class _ProbeJob(QRunnable):
    def __init__(self, signals: _ProbeSignals, settings: Settings) -> None:
        super().__init__()
        self.signals = signals
        self.settings = settings

    def run(self) -> None:  # pool thread
        probes: dict[str, ProbeResult] = {}
        capabilities: dict[str, Any] = {}
        for engine_id in engine_ids():
            try:
                engine = configure_engine(create_engine(engine_id), self.settings)
                capabilities[engine_id] = engine.capabilities
                probes[engine_id] = engine.probe()
            except Exception as exc:  # an engine that cannot even be created says why
                probes[engine_id] = ProbeResult(False, f"cannot be loaded ({type(exc).__name__}: {exc})")
            try:  # report as each engine answers: the quick flow engine need not wait for a GPU check
                self.signals.done.emit(dict(probes), dict(capabilities))
            except RuntimeError:  # the window closed meanwhile
                return
        try:
            identity = model_identity(self.settings)
        except Exception as exc:  # diagnostics must not fail because of a strange file
            identity = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            self.signals.identity.emit(self.settings.model_path, identity)
        except RuntimeError:  # the window closed meanwhile
            return


class GenerationController(QObject):
    message = Signal(str)
    take_added = Signal(str, object)  # take id, SegmentSpan key
    probes_ready = Signal(object, object)

    def __init__(self, session: Session, worker: Worker, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.worker = worker
        self.settings = settings
        self.probes: dict[str, ProbeResult] = {}
        self.capabilities: dict[str, Any] = {}
        self.model_identity: dict[str, Any] | None = None
        self.model_identity_known = False  # False until the probe pool has looked at the model file
        self._engines: dict[str, Engine] = {}  # touched only on the worker thread
        self._probe_pool = QThreadPool(self)
        self._probe_pool.setMaxThreadCount(1)
        track_pool(self._probe_pool)
        self._probe_signals = _ProbeSignals()
        self._probe_signals.done.connect(self._probed)
        self._probe_signals.identity.connect(self._identified)
        worker.task_finished.connect(self._finished)
        worker.task_failed.connect(self._failed)
        worker.task_cancelled.connect(self._cancelled)

    # -- engines
    def probe_engines(self) -> None:
        self._probe_pool.start(_ProbeJob(self._probe_signals, copy.deepcopy(self.settings)))

    def _probed(self, probes: dict[str, ProbeResult], capabilities: dict[str, Any]) -> None:
        self.probes = probes
        self.capabilities = capabilities
        self.probes_ready.emit(probes, capabilities)

    def _identified(self, model_path: str | None, identity: dict[str, Any] | None) -> None:
        if model_path == self.settings.model_path:  # an answer for an older setting is dropped
            self.model_identity = identity
            self.model_identity_known = True

    def settings_changed(self, settings: Settings) -> None:
        """New model path / device: engines are rebuilt at the next job, probes run again."""
        self.settings = settings
        self.model_identity, self.model_identity_known = None, False
        if not self.worker.busy:
            self._engines = {}
        self.probe_engines()

    def _engine(self, engine_id: str) -> Engine:  # worker thread
        engine = self._engines.get(engine_id)
        if engine is None:
            engine = configure_engine(create_engine(engine_id), self.settings)
            self._engines[engine_id] = engine
        return engine

    # -- jobs
    def job_label(self, job: Job) -> str:
        shot = self.session.shot
        names = []
        for key in (job.start, job.end):
            drawing = shot.drawings.get(key.drawing_id) if shot is not None else None
            names.append(drawing.label or f"{drawing.source_frame + 1:04d}" if drawing else "?")
        return f"{names[0]} → {names[1]}: {job.count} × {job.engine_id}"

    def generate(self, spans: list[SegmentSpan], new_seed: bool = False, **overrides: Any) -> list[Task]:
        """Queue one job per key pair; refused pairs (no in-between fits, ...) are reported, not raised."""
        project = self.session.project
        if project is None:
            self.message.emit("Open a shot first.")
            return []
        if not spans:
            self.message.emit("Select a key pair first: set keys with K, then click between two keys.")
            return []
        tasks = []
        jobs = []
        for span in spans:
            try:
                jobs.append(segment_job(project, span, seed=draw_seed() if new_seed else None, **overrides))
            except StudioError as exc:
                self.message.emit(str(exc))
        if jobs and self.settings.cluster_address:
            tasks.append(self._submit_to_cluster(jobs, self.settings.cluster_address))
        else:
            tasks += [self._submit(job) for job in jobs]
        if tasks:
            self.message.emit(f"Queued {len(tasks)} generation job{'s' if len(tasks) != 1 else ''}.")
        return tasks

    def regenerate_rejected(self, span: SegmentSpan) -> Task | None:
        """A new take that redraws only the rejected frames of the active take (new seed); the other
        frames of the active take are kept as they are (referenced, not copied)."""
        shot = self.session.shot
        project = self.session.project
        segment = shot.segments.get(span.key) if shot is not None else None
        if project is None or segment is None or segment.active_take not in shot.takes:
            self.message.emit("This key pair has no take to fix yet.")
            return None
        take = shot.takes[segment.active_take]
        rejected = [tf for tf in take.frames if tf.status == ReviewStatus.REJECTED]
        if not rejected:
            self.message.emit("No frame of this take is rejected: press X on a frame to reject it.")
            return None
        try:
            job = segment_job(project, span, times=[tf.time for tf in rejected],
                              offsets=[tf.offset for tf in rejected], seed=draw_seed())
        except StudioError as exc:
            self.message.emit(str(exc))
            return None
        keep = [replace(tf) for tf in take.frames if tf.status != ReviewStatus.REJECTED]
        return self._submit(job, keep_from=(take.id, keep))

    def _submit(self, job: Job, keep_from: tuple[str, list] | None = None) -> Task:
        def run(progress: ProgressCallback, cancel: CancelToken) -> JobResult:
            return run_job(job, self._engine(job.engine_id), progress, cancel, apply=False)

        label = self.job_label(job) + (" (rejected frames)" if keep_from else "")
        return self.worker.submit(label, run, "generate", payload={"job": job, "keep_from": keep_from})

    def _submit_to_cluster(self, jobs: list[Job], address: str) -> Task:
        """One task for the batch: the worker thread waits on the cluster, the UI keeps working."""
        def run(progress: ProgressCallback, cancel: CancelToken) -> list[JobResult]:
            from ..pipeline.cluster_ray import run_on_ray

            return list(run_on_ray(jobs, address, cancel=cancel, progress=progress))

        label = f"{len(jobs)} key pair{'s' if len(jobs) != 1 else ''} on the cluster {address}"
        return self.worker.submit(label, run, "generate", payload={"jobs": jobs})

    def _finished(self, task: Task, result: Any) -> None:
        if task.kind == "generate" and isinstance(result, list):  # a cluster batch
            for item in result:
                self._finished(task, item)
            return
        if task.kind != "generate" or not isinstance(result, JobResult):
            return
        project = self.session.project
        if project is None or result.job.project is not project:
            log.info("A finished take belongs to a project that is no longer open; it was not added.")
            return
        keep_from = (task.payload or {}).get("keep_from")
        if keep_from and result.take is not None:
            old_id, kept = keep_from
            result.take.frames = sorted(kept + result.take.frames, key=lambda tf: tf.offset)
            result.take.params["kept_from_take"] = old_id
        try:
            apply_result(result, project)
        except StudioError as exc:
            self.message.emit(f"The take could not be added: {exc}")
            return
        take = result.take
        pending = sum(1 for tf in take.frames if tf.status == ReviewStatus.PENDING)
        self.message.emit(f"Take {take.label} is ready: {pending} in-between{'s' if pending != 1 else ''} "
                          f"to review (A accept, X reject, N next).")
        log.info("Take %s (%s) added in %.1f s", take.label, take.id, result.seconds)
        self.take_added.emit(take.id, (take.start_key, take.end_key))

    def _failed(self, task: Task, message: str, _details: str) -> None:
        if task.kind == "generate":
            log.warning("Generation failed: %s", message)
            self.message.emit(f"Generation failed: {message}")

    def _cancelled(self, task: Task) -> None:
        if task.kind == "generate":
            self.message.emit(f"Cancelled: {task.label}")

    def shutdown(self) -> None:
        self._probe_pool.waitForDone(60_000)
        for engine in self._engines.values():
            try:
                engine.unload()
            except Exception:  # unloading is best effort at exit
                log.exception("Could not unload %s", engine.id)
        self._engines = {}
