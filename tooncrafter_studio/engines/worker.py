"""An engine in another Python process: the JSON-lines protocol, the worker and its client.

The frozen app carries no torch; the ToonCrafter engine runs in the private environment's
interpreter (setup/engine_env.py) as a worker process:

    <env python> -m tooncrafter_studio.engines.worker ENGINE_ID      (our sources on PYTHONPATH)

One JSON object per line. Images travel as .npy files in a folder the client owns (never pickled).

    client -> worker                                  worker -> client
    {"op": "configure", "params": {...}}              {"event": "hello", "protocol": 1, "python": ...}
    {"op": "probe"}                                   {"event": "ok"}   (configure, unload)
    {"op": "identity"}                                {"event": "probe", "available": b, "reason": s}
    {"op": "interpolate", "start": npy, "end": npy,   {"event": "identity", "identity": {...}}
     "times": [...], "params": {...}, "seed": n,      {"event": "progress", "stage": s, "done": n,
     "prompt": s, "out": folder}                       "total": n, "message": s, "eta_s": x}
    {"op": "cancel"}    (while interpolating)         {"event": "result", "frames": [npy...], "info": {...}}
    {"op": "unload"}                                  {"event": "error", "type": "ModelError", "message": s}
    {"op": "release_gpu"}
    {"op": "quit"}

The worker's stdout carries only the protocol: anything a library prints goes to stderr, which the
client keeps (the last lines explain a crash).

Each side reads the other's lines as outside text: a line that is not one JSON object (a list, a
number, null, nesting too deep to parse, bytes that are not UTF-8, a line over MAX_LINE_CHARS) gets
an error event from the worker, which lives on; the client takes it as a broken worker, stops it and
reports the engine unavailable (EngineUnavailable, never an AttributeError or a hang).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..core import errors
from ..core.errors import Cancelled, EngineUnavailable, StudioError
from ..core.progress import CancelToken, ProgressCallback, ProgressEvent
from .base import Engine, EngineCapabilities, InterpolationRequest, InterpolationResult, ProbeResult

log = logging.getLogger(__name__)

PROTOCOL = 1
STARTUP_TIMEOUT_S = 300.0  # importing torch on a cold disk can take a minute
CANCEL_GRACE_S = 30.0  # after this long without an answer to "cancel" the worker is killed
MAX_LINE_CHARS = 4 << 20  # one protocol line; a longer one is refused (the messages are small)
MAX_TEXT_CHARS = 2000  # an error message or reason taken from the other side


def _error_type(name: str) -> type[StudioError]:
    found = getattr(errors, name, None)
    return found if isinstance(found, type) and issubclass(found, StudioError) else StudioError


def _clip(value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def parse_line(line: str) -> dict[str, Any] | str:
    """One protocol line as a JSON object, or why it is not one (a short sentence)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
        return f"a line that is not JSON ({type(exc).__name__})"
    if not isinstance(message, dict):
        kinds = {list: "a list", int: "a number", float: "a number", str: "text", bool: "true/false"}
        return f"{kinds.get(type(message), 'null')} instead of a JSON object"
    return message


def read_line(stream: IO[str]) -> str | None:
    """The next line of at most MAX_LINE_CHARS (the rest of a longer one is read and dropped, and an
    empty marker line returned in its place); None at the end of the stream."""
    line = stream.readline(MAX_LINE_CHARS)
    if not line:
        return None
    if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
        while True:
            rest = stream.readline(MAX_LINE_CHARS)
            if not rest or rest.endswith("\n"):
                break
        return "\0too long"
    return line


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


# --------------------------------------------------------------------------------------------------
# The worker (runs in the engine's environment)


class _Worker:
    def __init__(self, engine: Engine, out: IO[str]) -> None:
        self.engine = engine
        self.out = out
        self.lock = threading.Lock()
        self.cancel: CancelToken | None = None
        self.job: threading.Thread | None = None
        self.busy = False

    def send(self, **message: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    @staticmethod
    def error_message(exc: BaseException) -> dict[str, Any]:
        kind = type(exc).__name__ if isinstance(exc, StudioError) else "StudioError"
        text = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, StudioError):
            log.error("Engine worker failed", exc_info=exc)
        return {"event": "error", "type": kind, "message": text}

    def error(self, exc: BaseException) -> None:
        self.send(**self.error_message(exc))

    def interpolate(self, message: dict[str, Any], cancel: CancelToken) -> None:
        reply: dict[str, Any]
        try:
            request = InterpolationRequest(
                start=np.load(message["start"], allow_pickle=False), end=np.load(message["end"], allow_pickle=False),
                times=[float(t) for t in message["times"]], params=dict(message.get("params") or {}),
                seed=message.get("seed"), prompt=str(message.get("prompt") or ""))

            def progress(event: ProgressEvent) -> None:
                self.send(event="progress", stage=event.stage, done=event.done, total=event.total,
                          message=event.message, eta_s=event.eta_s)
                cancel.raise_if_cancelled()

            result = self.engine.interpolate(request, progress, cancel)
            out = Path(message["out"])
            paths = []
            for i, frame in enumerate(result.frames):
                path = out / f"frame_{i:04d}.npy"
                np.save(path, np.ascontiguousarray(frame), allow_pickle=False)
                paths.append(str(path))
            reply = {"event": "result", "frames": paths, "info": {k: _jsonable(v) for k, v in result.info.items()}}
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, the worker lives on
            reply = self.error_message(exc)
        self.busy = False  # before the answer, so that the client's next request is never refused
        self.send(**reply)

    def handle(self, message: dict[str, Any]) -> bool:
        """One client message; False to stop."""
        op = message.get("op")
        if not isinstance(op, str):
            self.send(event="error", type="StudioError", message="The engine worker got a message without an 'op'.")
            return True
        op = op[:40]
        busy = self.busy
        if op == "cancel":
            if self.cancel is not None:
                self.cancel.cancel()
            return True
        if op == "quit":
            if busy and self.cancel is not None:
                self.cancel.cancel()
                self.job.join()  # type: ignore[union-attr]
            return False
        if busy:
            self.send(event="error", type="StudioError", message=f"The engine worker is busy; '{op}' was refused.")
            return True
        try:
            if op == "configure":
                configure = getattr(self.engine, "configure", None)
                if configure is not None:
                    configure(dict(message.get("params") or {}))
                self.send(event="ok")
            elif op == "probe":
                result = self.engine.probe()
                self.send(event="probe", available=result.available, reason=result.reason)
            elif op == "identity":
                self.send(event="identity", identity={k: _jsonable(v) for k, v in self.engine.identity().items()})
            elif op == "unload":
                self.engine.unload()
                self.send(event="ok")
            elif op == "release_gpu":
                self.engine.release_gpu()
                self.send(event="ok")
            elif op == "interpolate":
                self.cancel = CancelToken()
                self.busy = True
                self.job = threading.Thread(target=self.interpolate, args=(message, self.cancel), daemon=True)
                self.job.start()
            else:
                self.send(event="error", type="StudioError", message=f"Unknown operation '{op}'.")
        except BaseException as exc:  # noqa: BLE001
            self.error(exc)
        return True


def worker_main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Keep the protocol channel clean: our stdout is a private copy, fd 1 now points at stderr.
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="worker %(levelname)s %(name)s: %(message)s")
    from .registry import create_engine

    engine_id = args[0] if args else "tooncrafter"
    try:
        engine = create_engine(engine_id)
    except StudioError as exc:
        protocol_out.write(json.dumps({"event": "error", "type": type(exc).__name__, "message": str(exc)}) + "\n")
        return 2
    worker = _Worker(engine, protocol_out)
    worker.send(event="hello", protocol=PROTOCOL, engine=engine_id, python=sys.executable, pid=os.getpid(),
                package=str(Path(__file__).resolve().parents[1]))
    # bytes that are not UTF-8 become U+FFFD (an error event for that line), never a dead worker
    requests = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    while (line := read_line(requests)) is not None:
        if not line.strip():
            continue
        message = parse_line(line) if line != "\0too long" else f"a line over {MAX_LINE_CHARS:,} characters"
        if isinstance(message, str):
            worker.send(event="error", type="StudioError", message=f"The engine worker got {message}; it was ignored.")
            continue
        if not worker.handle(message):
            break
    if worker.job is not None and worker.cancel is not None:
        worker.cancel.cancel()
        worker.job.join()
    return 0


# --------------------------------------------------------------------------------------------------
# The client (runs in the app)


class WorkerEngine(Engine):
    """An engine whose work happens in a worker process (started on first use, kept for reuse)."""

    def __init__(self, engine_id: str, python: str | os.PathLike, source_root: str | os.PathLike,
                 label: str = "", capabilities: EngineCapabilities | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.id = engine_id
        self.label = label or engine_id
        self.capabilities = capabilities or EngineCapabilities()
        self.python = str(python)
        self.source_root = str(source_root)
        self._extra_env = dict(env or {})
        self._params: dict[str, Any] = {}
        self._process: subprocess.Popen | None = None
        self._events: collections.deque[dict[str, Any] | None] = collections.deque()
        self._arrived = threading.Condition()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()  # one request at a time
        self._configured: dict[str, Any] | None = None
        self.worker_info: dict[str, Any] = {}  # the worker's hello: its python, pid, package folder

    # -- the process ----------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        env = dict(os.environ)
        for key in ("PYTHONHOME", "VIRTUAL_ENV", "QT_PLUGIN_PATH"):
            env.pop(key, None)
        env["PYTHONPATH"] = self.source_root
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self._extra_env)
        command = [self.python, "-m", "tooncrafter_studio.engines.worker", self.id]
        # the windowed app on Windows would otherwise open a console window for the worker
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                             errors="replace", env=env, bufsize=1, cwd=self.source_root,
                                             creationflags=flags)
        except OSError as exc:
            raise EngineUnavailable(f"The engine environment's Python could not start ({self.python}: "
                                    f"{exc.strerror or exc}). Run the engine install again.") from exc
        self._events.clear()
        self._configured = None
        threading.Thread(target=self._read_stdout, args=(self._process,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._process,), daemon=True).start()
        hello = self._next_event(STARTUP_TIMEOUT_S, None)
        protocol = hello.get("protocol")
        if hello.get("event") != "hello" or type(protocol) is not int or protocol != PROTOCOL:
            self.close(kill=True)
            self._raise_error(hello)
            raise EngineUnavailable(f"The engine worker at {self.python} did not say hello as it should "
                                    f"({_clip(hello, 200)}); run the engine install again.")
        self.worker_info = {k: _clip(v, 400) if not isinstance(v, int) else v for k, v in hello.items()}

    def _read_stdout(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        while (line := read_line(process.stdout)) is not None:
            if not line.strip():
                continue
            parsed = parse_line(line) if line != "\0too long" else f"a line over {MAX_LINE_CHARS:,} characters"
            # a broken line is an event of its own: whoever waits for an answer learns it at once
            event = parsed if isinstance(parsed, dict) else {"event": "malformed", "why": parsed}
            with self._arrived:
                self._events.append(event)
                self._arrived.notify_all()
        with self._arrived:
            self._events.append(None)  # the worker is gone
            self._arrived.notify_all()

    def _read_stderr(self, process: subprocess.Popen) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self._stderr_tail.append(line.rstrip())
            log.debug("worker: %s", line.rstrip())

    def _send(self, **message: Any) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
        except (OSError, ValueError) as exc:
            raise self._died() from exc

    def _died(self) -> EngineUnavailable:
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # it closed its output but lives on: stop it
                self._process.kill()
                code = self._process.wait()
        tail = [line for line in self._stderr_tail if line.strip()][-3:]
        self._process = None
        return EngineUnavailable(f"The engine worker stopped unexpectedly (exit code {code})"
                                 + (": " + " | ".join(tail) if tail else "."))

    def _next_event(self, timeout: float | None, cancel: CancelToken | None) -> dict[str, Any]:
        """The next event; sends "cancel" once when the token is set (and kills after a grace time)."""
        deadline = time.monotonic() + timeout if timeout else None
        cancel_sent: float | None = None
        with self._arrived:
            while not self._events:
                if cancel is not None and cancel.cancelled and cancel_sent is None:
                    cancel_sent = time.monotonic()
                    self._send(op="cancel")
                if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S:
                    self.close(kill=True)
                    raise Cancelled()
                if deadline is not None and time.monotonic() > deadline:
                    self.close(kill=True)
                    raise EngineUnavailable("The engine worker did not answer in time; it was stopped.")
                self._arrived.wait(timeout=0.1)
            event = self._events.popleft()
        if event is None:
            raise self._died()
        return event

    @staticmethod
    def _raise_error(event: dict[str, Any]) -> None:
        if event.get("event") == "error":
            kind = _error_type(_clip(event.get("type"), 40))
            raise kind(_clip(event.get("message"))) if kind is not Cancelled else Cancelled()

    def _broken(self, event: dict[str, Any], what: str) -> EngineUnavailable:
        """A worker that answered out of protocol is stopped: its next answers cannot be trusted."""
        self.close(kill=True)
        why = event.get("why") if event.get("event") == "malformed" else f"{_clip(event.get('event'), 40)!r}"
        return EngineUnavailable(f"The engine worker answered {why} to {what}; it was stopped.")

    def _call(self, expect: str, **message: Any) -> dict[str, Any]:
        self._start()
        self._ensure_configured()
        self._send(**message)
        event = self._next_event(STARTUP_TIMEOUT_S, None)
        self._raise_error(event)
        if event.get("event") != expect:
            raise self._broken(event, repr(message.get("op")))
        return event

    def _ensure_configured(self) -> None:
        if self._params and self._configured != self._params:
            self._send(op="configure", params=self._params)
            event = self._next_event(STARTUP_TIMEOUT_S, None)
            self._raise_error(event)
            if event.get("event") != "ok":
                raise self._broken(event, "'configure'")
            self._configured = dict(self._params)

    # -- Engine ------------------------------------------------------------------------------------
    def configure(self, params: dict[str, Any]) -> None:
        self._params.update({k: _jsonable(v) for k, v in params.items()})

    def probe(self) -> ProbeResult:
        try:
            with self._lock:
                event = self._call("probe", op="probe")
        except StudioError as exc:
            return ProbeResult(False, str(exc))
        return ProbeResult(event.get("available") is True, _clip(event.get("reason", "")))

    def identity(self) -> dict[str, Any]:
        try:
            with self._lock:
                found = self._call("identity", op="identity").get("identity")
        except StudioError:
            found = None
        return dict(found) if isinstance(found, dict) else {"engine": self.id, "worker": self.python}

    def unload(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with self._lock:
                self._call("ok", op="unload")

    def release_gpu(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with self._lock:
                self._call("ok", op="release_gpu")

    def interpolate(self, request: InterpolationRequest, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> InterpolationResult:
        request.validate()
        cancel = cancel or CancelToken()
        with self._lock, tempfile.TemporaryDirectory(prefix="tcs-worker-") as folder:
            cancel.raise_if_cancelled()
            self._start()
            self._ensure_configured()
            start, end = Path(folder) / "start.npy", Path(folder) / "end.npy"
            np.save(start, request.start, allow_pickle=False)
            np.save(end, request.end, allow_pickle=False)
            self._send(op="interpolate", start=str(start), end=str(end), times=[float(t) for t in request.times],
                       params={k: _jsonable(v) for k, v in request.params.items()}, seed=request.seed,
                       prompt=request.prompt, out=folder)
            while True:
                event = self._next_event(None, cancel)
                kind = event.get("event")
                if kind == "progress":
                    try:
                        told = _progress_event(event)
                    except (KeyError, TypeError, ValueError, OverflowError):
                        raise self._broken({"event": "malformed", "why": "a progress event without numbers"},
                                           "'interpolate'") from None
                    if progress is not None and not cancel.cancelled:
                        try:
                            progress(told)
                        except Cancelled:
                            cancel.cancel()  # the callback asked to stop: tell the worker, await its answer
                    continue
                self._raise_error(event)
                if kind == "result":
                    return InterpolationResult(self._frames(event, Path(folder)), _info(event))
                raise self._broken(event, "'interpolate'")

    def _frames(self, event: dict[str, Any], folder: Path) -> list[np.ndarray]:
        """The result's frames: .npy files the worker wrote into our folder, nowhere else."""
        paths = event.get("frames")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise self._broken({"event": "malformed", "why": "a result without a list of frames"}, "'interpolate'")
        frames = []
        for text in paths:
            path = Path(text)
            if path.parent.resolve() != folder.resolve() or path.suffix != ".npy":
                raise self._broken({"event": "malformed", "why": f"a frame outside its folder ({_clip(text, 200)})"},
                                   "'interpolate'")
            try:
                frames.append(np.load(path, allow_pickle=False))
            except (OSError, ValueError) as exc:
                raise EngineUnavailable(f"The engine worker's frame {path.name} cannot be read ({exc}).") from None
        return frames

    def close(self, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if not kill:
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                process.stdin.flush()
                process.wait(timeout=10)
                return
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        process.kill()
        process.wait()

    def __del__(self) -> None:
        try:
            self.close(kill=True)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _progress_event(event: dict[str, Any]) -> ProgressEvent:
    eta = event.get("eta_s")
    return ProgressEvent(_clip(event["stage"], 40), int(event["done"]), int(event["total"]),
                         _clip(event.get("message", ""), 400), float(eta) if isinstance(eta, (int, float)) else None)


def _info(event: dict[str, Any]) -> dict[str, Any]:
    info = event.get("info")
    return dict(info) if isinstance(info, dict) else {}


if __name__ == "__main__":
    sys.exit(worker_main())
