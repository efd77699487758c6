"""Generation on a Ray cluster: the jobs' engine work runs on the cluster's workers, the results
come back and are written here exactly as a local run writes them.

    for result in run_on_ray(jobs, "ray://head:10001"):
        commit_take(result)

- Which cluster (`--cluster`), decided explicitly, never by what happens to run on the machine:
    ray            RAY_ADDRESS when it is set, else a private local cluster (address="local") that
                   starts and stops with the command: it never attaches to someone else's
    ray:local      a private local cluster even when RAY_ADDRESS is set
    ray:auto       the cluster already running on this machine (`ray start --head`)
    ray://H:P      a remote cluster through Ray Client (the `cluster` extra installs ray[client])
  Only a private cluster is told this machine's resources; a running one has its own.
- Each worker is a Ray actor holding one loaded engine, so the model is loaded once per worker,
  not once per task. An engine that needs a GPU (ToonCrafter, unless device=cpu) asks for one
  (`num_gpus=1`): as many workers as the cluster has GPUs. One that does not (the flow engine)
  asks for a CPU slot (`num_cpus=1`): as many workers as the cluster has CPUs. `workers=` caps
  both, and there are never more workers than jobs.
- The submitting process reads the keys, fixes every seed, and hands each worker requests from a
  queue: a free worker takes the next one. The frames come back as numpy arrays; each job then goes
  through `run_job` with an engine that returns the remote result, so files, provenance and take
  labels are those of a local run. Results are yielded in job order.
- A worker that dies mid-task (a lost host, kill -9) is restarted by Ray and its task retried
  (`max_task_retries`); if the worker cannot come back, the task goes back on the queue for the
  others. Nothing is written until a job's frames are here, so nothing is lost or written twice.
- Losing the nodes that could run an engine (the only node, or every GPU node) ends the run with
  ClusterError (exit 3, one line): the takes already yielded stay; a farm may retry exit 3.
- Cancel (the token) stops waiting, cancels what is queued or running and frees the workers; takes
  already yielded stay.

Ray is an optional dependency (`pip install tooncrafter-studio[cluster]`); this module is imported
only when a cluster is asked for.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..core.errors import Cancelled, EngineUnavailable, InputError, StudioError
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from ..engines.base import Engine, InterpolationRequest, InterpolationResult, ProbeResult
from ..engines.registry import engine_info
from .engines import build_engine
from .jobs import Job
from .runner import JobResult, _load_key, check_engine, first_seed, run_job

log = logging.getLogger(__name__)

EngineFactory = Callable[[], Engine]
WAIT_S = 0.1  # how often waiting threads look at the cancel token
NODE_CHECK_WAITS = 20  # ...and every this many waits whether the cluster still has a node for the work
TASK_RETRIES = 2  # Ray restarts a dead worker and retries its task this often...
MAX_REPLACED = 4  # ...then a new worker takes the task over; an engine whose workers die this often fails


class ClusterError(StudioError):
    """The cluster cannot be reached or cannot run the jobs: the machine's problem, not the input's
    (exit 3, which a farm may retry)."""

    resource = True


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineUnavailable("Ray is not installed: pip install 'tooncrafter-studio[cluster]' "
                                "(on this machine and on the cluster).") from None
    return ray


PRIVATE = "local"  # ray.init's address for a new cluster of this process's own


def parse_address(text: str, environ: dict[str, str] | None = None) -> str:
    """The address ray.init gets for --cluster TEXT: 'local' (private), 'auto', a RAY_ADDRESS, ray://..."""
    environ = os.environ if environ is None else environ
    text = text.strip()
    if text == "ray":
        return environ.get("RAY_ADDRESS", "").strip() or PRIVATE
    if text == "ray:local":
        return PRIVATE
    if text == "ray:auto":
        return "auto"
    if text.startswith("ray://") and len(text) > len("ray://"):
        return text
    raise InputError(f"--cluster '{text}' should be 'ray' (RAY_ADDRESS, else a private local cluster), "
                     "'ray:local', 'ray:auto' (the one running here) or 'ray://HOST:PORT' (Ray Client).")


def connect(address: str) -> bool:
    """Connect to (or start) the cluster unless already connected; True when this call connected.

    A private cluster gets this machine's resources (Ray detects CPUs and GPUs); an existing one is
    never told any, which Ray refuses ("num_cpus and num_gpus must not be provided")."""
    ray = _ray()
    if ray.is_initialized():
        return False
    target = parse_address(address)
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if target == PRIVATE:
        options["include_dashboard"] = False
    try:
        ray.init(address=target, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"Cannot connect to the Ray cluster at {address} ({target}): {exc}") from None
    log.info("Ray cluster: %s", target)
    return True


def needs_gpu(engine_id: str, params: dict[str, Any] | None = None) -> bool:
    """Whether a worker of this engine asks the cluster for a GPU (device=cpu: no)."""
    if (params or {}).get("device") == "cpu":
        return False
    try:
        return bool(engine_info(engine_id).capabilities.needs_gpu)
    except StudioError:  # an engine only the workers know (a factory): it says nothing of GPUs
        return False


class EngineWorker:
    """The actor body: one engine, loaded once, serving requests until the actor is freed."""

    def __init__(self, factory: EngineFactory) -> None:
        self.engine = factory()
        check_engine(self.engine)
        self.engine.load()

    def interpolate(self, request: InterpolationRequest) -> tuple[InterpolationResult, dict[str, Any]]:
        result = self.engine.interpolate(request)
        return result, self.engine.identity()

    def pid(self) -> int:
        import os

        return os.getpid()


class _RemoteEngine(Engine):
    """What run_job sees: the result computed on the cluster for this job, and that engine's identity."""

    def __init__(self, engine_id: str, future: Future, dispatcher: _Dispatcher) -> None:
        self.id = engine_id
        self.label = engine_id
        self._future = future
        self._dispatcher = dispatcher
        self._identity: dict[str, Any] = {"engine": engine_id}

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "on the cluster")

    def identity(self) -> dict[str, Any]:
        return self._identity

    def interpolate(self, request, progress=None, cancel=None) -> InterpolationResult:
        while True:
            if self._dispatcher.cancelled:
                raise Cancelled()
            try:
                result, identity = self._future.result(timeout=WAIT_S)
            except FutureTimeout:
                continue
            self._identity = identity
            return result


class _Dispatcher:
    """Worker threads, one per actor, taking request indexes from a queue per engine."""

    def __init__(self, factories: dict[str, EngineFactory], counts: dict[str, int], jobs: list[Job],
                 cancel: CancelToken, progress: ProgressCallback, gpu_engines: set[str],
                 retries: int = TASK_RETRIES, max_replaced: int = MAX_REPLACED) -> None:
        ray = _ray()
        self.user_cancel = cancel
        self.stop = CancelToken()
        self.progress = progress
        self.jobs = jobs
        self.futures: list[Future] = [Future() for _ in jobs]
        self.done = 0
        self._lock = threading.Lock()
        self.queues: dict[str, queue.Queue[int]] = {engine_id: queue.Queue() for engine_id in counts}
        for index, job in enumerate(jobs):
            self.queues[job.engine_id].put(index)
        self.factories = factories
        self.replaced = dict.fromkeys(counts, 0)
        self.gpu_engines = gpu_engines
        self.max_replaced = max_replaced
        self.actor_class = ray.remote(max_restarts=retries, max_task_retries=retries)(EngineWorker)
        self.actors: list[Any] = []
        self.threads = []
        for engine_id, count in counts.items():
            for _ in range(count):
                actor = self._new_actor(engine_id)
                thread = threading.Thread(target=self._serve, args=(engine_id, actor), daemon=True,
                                          name=f"ray-{engine_id}-{len(self.threads)}")
                self.threads.append(thread)
        for thread in self.threads:
            thread.start()

    def _resource(self, engine_id: str) -> str:
        return "GPU" if engine_id in self.gpu_engines else "CPU"

    def _new_actor(self, engine_id: str) -> Any:
        if engine_id in self.gpu_engines:
            options = {"num_gpus": 1, "num_cpus": 1}
        else:
            options = {"num_gpus": 0, "num_cpus": 1}
        actor = self.actor_class.options(**options).remote(self.factories[engine_id])
        self.actors.append(actor)
        return actor

    @property
    def cancelled(self) -> bool:
        return self.stop.cancelled or self.user_cancel.cancelled

    def _wait(self, ref, engine_id: str) -> Any:
        ray = _ray()
        kind = self._resource(engine_id)
        waits = 0
        while True:
            waits += 1
            if waits % NODE_CHECK_WAITS == 0 and _cluster_amount(kind) < 1:  # its node is gone for good
                raise ClusterError(f"The Ray cluster has no node with a {kind} left for {engine_id}; "
                                   "takes already made are kept.")
            if self.cancelled:
                try:
                    ray.cancel(ref, force=False)
                except Exception:  # finished meanwhile, or the worker is gone: nothing to stop
                    log.debug("Could not cancel a cluster task", exc_info=True)
                return None
            ready, _ = ray.wait([ref], timeout=WAIT_S)
            if ready:
                return ray.get(ready[0])

    def _settle(self, index: int, value: Any = None, error: BaseException | None = None) -> None:
        future = self.futures[index]
        if future.done():  # already failed for the whole engine
            return
        if error is not None:
            future.set_exception(error)
            return
        future.set_result(value)
        with self._lock:
            self.done += 1
            done = self.done
        try:
            self.progress(ProgressEvent("cluster", done, len(self.jobs), f"{done} of {len(self.jobs)}"))
        except Cancelled:  # a callback may cancel by raising (the GUI worker's does)
            self.stop.cancel()

    def _serve(self, engine_id: str, actor: Any) -> None:
        ray = _ray()
        pending = self.queues[engine_id]
        while not self.cancelled:
            try:
                index = pending.get_nowait()
            except queue.Empty:  # nothing left for this engine: free its GPU for the other engines
                ray.kill(actor)
                return
            try:
                value = self._wait(actor.interpolate.remote(_request(self.jobs[index])), engine_id)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                # Ray already restarted the worker and retried the task TASK_RETRIES times: put the
                # task back and carry on with a new worker, wherever the cluster places it
                pending.put(index)
                with self._lock:
                    self.replaced[engine_id] += 1
                    too_many = self.replaced[engine_id] > self.max_replaced
                if too_many:
                    self._fail_pending(engine_id, ClusterError(
                        f"{engine_id} workers on the cluster kept failing ({self.max_replaced} replaced): "
                        f"{_first_line(exc)}"))
                    return
                kind = self._resource(engine_id)
                if _cluster_amount(kind) < 1:  # a new worker would wait for a node that is gone
                    self._fail_pending(engine_id, ClusterError(
                        f"The Ray cluster lost its last node with a {kind} for {engine_id} "
                        f"({_first_line(exc)}); takes already made are kept."))
                    return
                log.warning("A %s worker was lost (%s); its task goes to a new worker", engine_id, exc)
                actor = self._new_actor(engine_id)
                continue
            except ray.exceptions.RayTaskError as exc:  # the engine raised on the worker
                self._settle(index, error=_unwrap(exc))
                continue
            except (ray.exceptions.RayError, ClusterError) as exc:  # the cluster itself
                error = exc if isinstance(exc, ClusterError) else ClusterError(
                    f"The Ray cluster failed: {_first_line(exc)}")
                self._settle(index, error=error)
                self._fail_pending(engine_id, error)
                return
            except BaseException as exc:  # the engine's own error (bad params, out of memory...)
                self._settle(index, error=_unwrap(exc))
                continue
            if value is None:  # cancelled
                return
            self._settle(index, value)

    def _fail_pending(self, engine_id: str, error: BaseException) -> None:
        pending = self.queues[engine_id]
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            self._settle(index, error=error)

    def close(self) -> None:
        ray = _ray()
        self.stop.cancel()
        for thread in self.threads:
            thread.join(timeout=5)
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                log.debug("Could not free a worker", exc_info=True)


def _request(job: Job) -> InterpolationRequest:
    """The engine's input for a job, made when a worker is free (keys are not all held at once)."""
    request = InterpolationRequest(_load_key(job.start, job), _load_key(job.end, job), list(job.times),
                                   dict(job.params), job.seed, job.prompt)
    request.validate()
    return request


def _unwrap(exc: BaseException) -> BaseException:
    """A RayTaskError wrapping a StudioError becomes that error, so the message stays the engine's."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _first_line(exc: BaseException) -> str:
    """Ray's message for a one-line error: its first line, without the terminal colours Ray adds."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _cluster_amount(kind: str) -> int:
    """CPUs or GPUs on the cluster's live nodes (0 when it cannot be asked)."""
    try:
        return int(_ray().cluster_resources().get(kind, 0))
    except Exception:  # the cluster is gone altogether
        log.debug("Could not ask the cluster for its resources", exc_info=True)
        return 0


def cluster_gpus() -> int:
    return _cluster_amount("GPU")


def run_on_ray(jobs: list[Job], address: str = "ray", *, progress_factory: Callable[[], Any] | None = None,
               cancel: CancelToken | None = None, factories: dict[str, EngineFactory] | None = None,
               workers: int | None = None, progress: ProgressCallback | None = None,
               retries: int = TASK_RETRIES, max_replaced: int = MAX_REPLACED) -> Iterator[JobResult]:
    """Run the jobs' engine work on the cluster; yield each job's result, written locally, in job order.

    progress_factory: a context manager giving each job's progress callback (the CLI's bars);
    progress: batch events ("cluster", jobs finished on the cluster, jobs) for a jobs panel.
    factories: engine id -> how a worker makes its engine (default: the registry).
    retries, max_replaced: how often a lost worker is restarted in place, then replaced, before the
    engine's jobs fail with ClusterError.
    """
    cancel = cancel or CancelToken()
    if not jobs:
        return
    ray = _ray()
    connected = connect(address)
    dispatcher = None
    yielded = 0
    try:
        gpu_engines = {job.engine_id for job in jobs if needs_gpu(job.engine_id, job.params)}
        available = {kind: _cluster_amount(kind) for kind in ("CPU", "GPU")}
        if gpu_engines and available["GPU"] < 1:
            raise ClusterError(f"The Ray cluster at {address} has no GPUs for {', '.join(sorted(gpu_engines))} "
                               "(start its nodes with --num-gpus, or use the flow engine, which runs on CPUs).")
        if available["CPU"] < 1:
            raise ClusterError(f"The Ray cluster at {address} has no CPUs to run workers on.")
        for job in jobs:  # fixed here so a retried task makes the same frames
            if job.seed is None:
                job.seed = first_seed(engine_info(job.engine_id).capabilities)
        factories = {job.engine_id: (factories or {}).get(job.engine_id)
                     or functools.partial(build_engine, job.engine_id, job.params) for job in jobs}
        per_engine: dict[str, int] = {}
        for job in jobs:
            per_engine[job.engine_id] = per_engine.get(job.engine_id, 0) + 1
        counts = {engine_id: max(1, min(n, workers or available["GPU" if engine_id in gpu_engines else "CPU"]))
                  for engine_id, n in per_engine.items()}
        dispatcher = _Dispatcher(factories, counts, jobs, cancel, progress or no_progress, gpu_engines,
                                 retries, max_replaced)
        for index, job in enumerate(jobs):
            engine = _RemoteEngine(job.engine_id, dispatcher.futures[index], dispatcher)
            if progress_factory is None:
                result = run_job(job, engine, None, cancel)
            else:
                with progress_factory() as job_progress:
                    result = run_job(job, engine, job_progress, cancel)
            yielded += 1
            yield result
    except (ray.exceptions.RayError, ConnectionError) as exc:  # not the engine's: the cluster's
        raise ClusterError(f"The Ray cluster at {address} failed: {_first_line(exc)}") from None
    finally:
        for job in jobs[yielded:]:  # not run (cancelled, failed): their reserved take ids are free again
            job.release()
        if dispatcher is not None:
            dispatcher.close()
        if connected:
            _ray().shutdown()
