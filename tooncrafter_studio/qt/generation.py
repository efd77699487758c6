"""Generation from the window: jobs made on the UI thread, run by the one worker, applied back as
undoable AddTake commands on the UI thread (the pipeline's `run_job` without a project, then
`apply_result`). Each job reports back through its own `on_done`.

Engines are created, configured and used only inside tasks, so only on the worker thread; the
pipeline's EngineCache keeps them between jobs (a loaded model is not reloaded for every segment)
and reconfigures them when a job brings other options, so a settings change never leaves a stale
engine behind. Engine probes run on a small pool of their own, so the window opens before any
CUDA or model check.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import StudioError
from ..core.paths import find_model
from ..core.progress import CancelToken, ProgressCallback
from ..core.settings import Settings
from ..engines.base import EngineCapabilities, ProbeResult
from ..engines.registry import engine_ids, engine_info
from ..pipeline.engines import EngineCache, build_engine, settings_options
from ..pipeline.jobs import Job, redo_rejected_job, segment_job
from ..pipeline.runner import JobResult, apply_result, draw_seed, run_job
from ..pipeline.shared_project import record_take
from ..project.document import ReviewStatus, segment_settings
from ..project.resolve import SegmentSpan
from .session import Session
from .worker import Task, Worker, track_pool

log = logging.getLogger(__name__)


def is_reviewed(take) -> bool:
    """Whether the animator has judged any frame of the take (accepted or rejected)."""
    return any(frame.status != ReviewStatus.PENDING for frame in take.frames)


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
                engine = build_engine(engine_id, defaults=settings_options(self.settings))
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
    take_beside = Signal(str)  # a new take kept beside a reviewed active take (the takes panel offers it)
    probes_ready = Signal(object, object)
    job_started = Signal(object)  # task: one of ours was queued (the jobs panel watches it)
    job_ended = Signal(object)  # task: one of ours is done, failed or cancelled (its preview goes)

    def __init__(self, session: Session, worker: Worker, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.worker = worker
        self.settings = settings
        self.tasks: list[Task] = []  # ours, queued or running
        self.probes: dict[str, ProbeResult] = {}
        self.capabilities: dict[str, Any] = {}
        self.model_identity: dict[str, Any] | None = None
        self.model_identity_known = False  # False until the probe pool has looked at the model file
        self._engines = EngineCache()  # touched only on the worker thread
        self._probe_pool = QThreadPool(self)
        self._probe_pool.setMaxThreadCount(1)
        track_pool(self._probe_pool)
        self._probe_signals = _ProbeSignals()
        self._probe_signals.done.connect(self._probed)
        self._probe_signals.identity.connect(self._identified)

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
        """New model path / device: the next job configures its engine with them; probes run again."""
        self.settings = settings
        self.model_identity, self.model_identity_known = None, False
        self.probes = {}  # until the new answers come, nothing is known to be unavailable
        self.probe_engines()

    def engine_capabilities(self, engine_id: str) -> EngineCapabilities:
        known = self.capabilities.get(engine_id)
        if known is None:
            try:
                known = engine_info(engine_id).capabilities
            except Exception:  # an engine that cannot be imported: the job will say why
                return EngineCapabilities()
        return known

    def engine_label(self, engine_id: str) -> str:
        try:
            return engine_info(engine_id).label
        except Exception:  # an engine that cannot even be imported
            return engine_id

    def refusal(self, engine_id: str, new_variant: bool = False) -> str:
        """Why a job for `engine_id` would be refused now ('' when it can be queued): the engine is
        known to be unavailable, or a new seed is asked of an engine that ignores seeds."""
        probe = self.probes.get(engine_id)
        label = self.engine_label(engine_id)
        if probe is not None and not probe.available:
            reason = (probe.reason or "no reason given").rstrip().rstrip(".")
            return (f"The {label} engine is not available: {reason}. Choose another engine under Engine in the "
                    "Segment panel, or fix it in Settings (Edit ▸ Settings).")
        if new_variant and not self.engine_capabilities(engine_id).seed_variants:
            return (f"The {label} engine is deterministic: a new seed gives the same in-betweens. To get "
                    "different ones, change Spacing, In-betweens or Engine in the Segment panel, then press G.")
        return ""

    def _engine_id(self, span: SegmentSpan) -> str:
        shot = self.session.shot
        return (segment_settings(shot, span.key).engine if shot is not None else "") or "flow"

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
            refusal = self.refusal(overrides.get("engine") or self._engine_id(span), new_variant=new_seed)
            if refusal:
                self.message.emit(refusal)
                continue
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
        project = self.session.project
        if project is None:
            self.message.emit("Open a shot first.")
            return None
        refusal = self.refusal(self._engine_id(span), new_variant=True)
        if refusal:
            self.message.emit(refusal)
            return None
        try:
            job = redo_rejected_job(project, span, seed=draw_seed())
        except StudioError as exc:
            message = str(exc)
            if "nothing to redo" in message:
                message += " Press X on a frame to reject it."
            self.message.emit(message)
            return None
        return self._submit(job)

    def free_gpu_memory(self) -> Task:
        """The studio's "Free GPU Memory": after the queued jobs, every kept engine gives its GPU
        memory back (weights and allocator cache); the model stays loaded on the CPU."""
        engines = self._engines
        return self.worker.submit("Free GPU memory", lambda progress, cancel: engines.release_gpu(), "engine")

    def _submit(self, job: Job) -> Task:
        defaults = settings_options(self.settings)  # this job's settings, even if they change meanwhile
        keep_loaded = self.settings.keep_model_loaded
        engines = self._engines

        def run(progress: ProgressCallback, cancel: CancelToken) -> JobResult:
            try:
                engine = engines.get(job.engine_id, job.params, defaults, strict=False)
            except BaseException:
                job.release()
                raise
            try:
                return run_job(job, engine, progress, cancel)
            finally:  # done, failed or cancelled: the setting says whether the GPU stays ours
                if not keep_loaded:
                    engines.release_gpu()

        label = self.job_label(job) + (" (rejected frames)" if job.kept_from else "")
        return self.worker.submit(label, run, payload={"job": job}, on_done=self._job_done, watch=self._watch)

    def _submit_to_cluster(self, jobs: list[Job], address: str) -> Task:
        """One task for the batch: the worker thread waits on the cluster, the UI keeps working."""
        def run(progress: ProgressCallback, cancel: CancelToken) -> list[JobResult]:
            from ..pipeline.cluster_ray import run_on_ray

            return list(run_on_ray(jobs, address, cancel=cancel, progress=progress))

        label = f"{len(jobs)} key pair{'s' if len(jobs) != 1 else ''} on the cluster {address}"
        return self.worker.submit(label, run, payload={"jobs": jobs}, on_done=self._batch_done, watch=self._watch)

    def _watch(self, task: Task) -> None:
        self.tasks.append(task)
        task.signals.ended.connect(self._ended)
        self.job_started.emit(task)  # connected to JobsPanel.watch: its row shows from the start

    def _ended(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        self.job_ended.emit(task)

    def cancel_all(self) -> None:
        """Cancel our queued and running jobs (another project is being opened)."""
        for task in list(self.tasks):
            self.worker.cancel(task)

    def _batch_done(self, task: Task) -> None:
        jobs: list[Job] = task.payload["jobs"]
        results = task.result if task.state == "done" and isinstance(task.result, list) else []
        for result in results:
            self._add_take(result)
        for job in jobs:
            job.release()  # idempotent: a take added above already released its own
        self._say_why_it_ended(task)

    def _job_done(self, task: Task) -> None:
        job: Job = task.payload["job"]
        if task.state == "done" and isinstance(task.result, JobResult):
            self._add_take(task.result)
            return
        job.release()  # cancelled while queued, failed, or cancelled after run_job returned
        self._say_why_it_ended(task)

    def _say_why_it_ended(self, task: Task) -> None:
        if task.state == "failed":
            log.warning("Generation failed (%s): %s", task.label, task.error)
            self.message.emit(f"Generation failed: {task.error}")
        elif task.state == "cancelled":
            self.message.emit(f"Cancelled: {task.label}")

    def _add_take(self, result: JobResult) -> None:
        project = self.session.project
        reservation = result.job.reservation
        if project is None or reservation is None or reservation.project_file != project.project_file:
            result.job.release()
            log.info("A finished take belongs to a project that is no longer open; it was not added.")
            return
        # A reviewed take stays active (it is what the animator chose, what shows and exports); the new
        # one comes beside it. Redrawing its rejected frames is asked of that take itself: that one
        # takes over, carrying the accepted frames along.
        segment = project.shot.segments.get((result.take.start_key, result.take.end_key))
        kept = segment.active_take if segment is not None and not result.job.kept_from else None
        beside = kept is not None and kept in project.shot.takes and is_reviewed(project.shot.takes[kept])
        was_clean = project.stack.is_clean
        try:
            apply_result(result, project, activate=not beside)
        except StudioError as exc:
            self.message.emit(f"The take could not be added: {exc}")
            return
        take = result.take
        try:  # in project.json now, not at the next save or autosave: a crash loses no finished take
            record_take(project, take, was_clean)
        except StudioError as exc:
            log.warning("Take %s could not be recorded in project.json: %s", take.id, exc)
            self.message.emit(f"Take {take.label} is in the studio but not yet on disk ({exc}); save to keep it.")
        if beside:
            reviewed = project.shot.takes[kept]
            self.message.emit(f"Take {take.label} is ready beside {reviewed.label or reviewed.id}, which stays active "
                              "(reviewed: it is what shows and exports). Pick it in the Takes panel to compare (B), "
                              "double-click it (or press ]) to make it the active take.")
            log.info("Take %s (%s) added beside the reviewed take %s", take.label, take.id, reviewed.label)
            self.take_beside.emit(take.id)
            return
        pending = sum(1 for tf in take.frames if tf.status == ReviewStatus.PENDING)
        self.message.emit(f"Take {take.label} is ready: {pending} in-between{'s' if pending != 1 else ''} "
                          f"to review (A accept, X reject, N next).")
        if result.unchanged:
            n = len(result.unchanged)
            self.message.emit(f"Take {take.label}: {n} redrawn frame{'s' if n != 1 else ''} came out identical to "
                              "the rejected one: this engine has no other variant there. Press R again, or change "
                              "Spacing, In-betweens or Engine in the Segment panel.")
        log.info("Take %s (%s) added in %.1f s", take.label, take.id, result.seconds)
        self.take_added.emit(take.id, (take.start_key, take.end_key))

    def shutdown(self) -> None:
        self._probe_pool.waitForDone(60_000)
        self._engines.clear()
