"""The engine worker's JSON-lines protocol, tried with garbage from each side.

The worker is a process we start (in the engine's private environment); its client is the app. A
damaged environment, a stray print or a hostile program on either end must not kill the worker
(every bad line gets an error event) nor hang or crash the client (it reports the engine
unavailable, stops the worker, and starts a fresh one next time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import python_env

from tooncrafter_studio.core.errors import EngineUnavailable, StudioError
from tooncrafter_studio.engines import worker as worker_module
from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.worker import WorkerEngine

SOURCE_ROOT = Path(__file__).resolve().parents[2]
MAX_LINE_CHARS = getattr(worker_module, "MAX_LINE_CHARS", 4 << 20)

BAD_LINES = {
    "list": b"[1, 2]",
    "number": b"5",
    "null": b"null",
    "text": b'"probe"',
    "true": b"true",
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "deep object nesting": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "not json": b"op=probe",
    "not utf-8": b'{"op": "\xff\xfe"}',
    "op is a list": b'{"op": ["probe"]}',
    "params a number": b'{"op": "configure", "params": 5}',
    "interpolate without files": b'{"op": "interpolate", "start": 5, "times": "x", "out": null}',
    "unknown op": b'{"op": "' + b"x" * 10_000 + b'"}',
    "line too long": b'{"op": "probe", "pad": "' + b"x" * (MAX_LINE_CHARS + 10) + b'"}',
}


def test_the_worker_answers_every_bad_line_with_an_error_and_lives_on():
    worker = subprocess.Popen([sys.executable, "-m", "tooncrafter_studio.engines.worker", "crossfade"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**python_env(), "PYTHONPATH": str(SOURCE_ROOT)}, cwd=SOURCE_ROOT)
    lines = [BAD_LINES[name] for name in BAD_LINES] + [b'{"op": "probe"}', b'{"op": "quit"}']
    out, err = worker.communicate(b"\n".join(lines) + b"\n", timeout=300)
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert worker.returncode == 0, err.decode()[-2000:]
    assert events[0]["event"] == "hello"
    errors = [e for e in events[1:] if e["event"] == "error"]
    assert len(errors) == len(BAD_LINES), [e["message"][:100] for e in errors]
    assert all(len(e["message"]) < 500 for e in errors)
    assert events[-1]["event"] == "probe" and events[-1]["available"] is True  # still alive and answering


FAKE_WORKER = """#!{python}
import sys
lines = open({script!r}, "rb").read().split(b"\\n---\\n")
out = sys.stdout.buffer
out.write(lines[0] + b"\\n"); out.flush()      # the hello
for answer in lines[1:]:                        # one answer per request
    if not sys.stdin.buffer.readline():
        break
    out.write(answer + b"\\n"); out.flush()
sys.stdin.buffer.read()
"""


def _fake_python(tmp_path: Path, hello: bytes, *answers: bytes) -> Path:
    script = tmp_path / "lines.bin"
    script.write_bytes(b"\n---\n".join((hello, *answers)))
    python = tmp_path / "python"
    python.write_text(FAKE_WORKER.format(python=sys.executable, script=str(script)))
    python.chmod(0o755)
    return python


HELLO = b'{"event": "hello", "protocol": 1, "engine": "fake", "python": "x", "pid": 1, "package": "x"}'

BAD_HELLOS = {
    "list": b"[1, 2]",
    "number": b"5",
    "null": b"null",
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "not json": b"Traceback (most recent call last):",
    "protocol true": b'{"event": "hello", "protocol": true}',
    "protocol 2": b'{"event": "hello", "protocol": 2}',
    "error without text": b'{"event": "error", "type": ["x"], "message": {"a": 1}}',
}

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="the fake interpreter is a #! script")


@posix_only
@pytest.mark.parametrize("case", sorted(BAD_HELLOS))
def test_a_malformed_hello_is_an_unavailable_engine(tmp_path, case):
    engine = WorkerEngine("fake", _fake_python(tmp_path, BAD_HELLOS[case]), SOURCE_ROOT)
    try:
        result = engine.probe()
        assert not result.available and result.reason and len(result.reason) < 2500
        assert engine.identity() == {"engine": "fake", "worker": engine.python}
        with pytest.raises(EngineUnavailable if case != "error without text" else StudioError):
            engine.interpolate(InterpolationRequest(*_keys(), [0.5]))
    finally:
        engine.close(kill=True)


BAD_ANSWERS = {
    "list": b"[]",
    "null": b"null",
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "another event": b'{"event": "result"}',
    "not json": b"warning: something printed to stdout",
}


@posix_only
@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_a_malformed_answer_stops_the_worker_and_reports_it(tmp_path, case):
    engine = WorkerEngine("fake", _fake_python(tmp_path, HELLO, BAD_ANSWERS[case]), SOURCE_ROOT)
    try:
        result = engine.probe()
        assert not result.available and "engine worker" in result.reason
        assert engine._process is None  # stopped: its next answers could not be trusted
    finally:
        engine.close(kill=True)


BAD_RESULTS = {
    "progress without numbers": b'{"event": "progress", "stage": "x", "done": "many", "total": null}',
    "progress with infinity": b'{"event": "progress", "stage": "x", "done": 1e999, "total": 1}',
    "frames not a list": b'{"event": "result", "frames": 5}',
    "a frame outside the folder": b'{"event": "result", "frames": ["/etc/passwd"]}',
    "a frame that is not there": b'{"event": "result", "frames": ["{folder}/frame_0000.npy"]}',
}


@posix_only
@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_a_malformed_result_is_an_unavailable_engine(tmp_path, case, monkeypatch):
    import tempfile

    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "TemporaryDirectory", lambda **kw: _Fixed(folder))
    answer = BAD_RESULTS[case].replace(b"{folder}", str(folder).encode())
    engine = WorkerEngine("fake", _fake_python(tmp_path, HELLO, answer), SOURCE_ROOT)
    try:
        with pytest.raises(EngineUnavailable, match="engine worker"):
            engine.interpolate(InterpolationRequest(*_keys(), [0.5]))
    finally:
        engine.close(kill=True)


class _Fixed:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> str:
        return str(self.folder)

    def __exit__(self, *exc) -> None:
        pass


def _keys():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (16, 24, 3), np.uint8), rng.integers(0, 256, (16, 24, 3), np.uint8)
