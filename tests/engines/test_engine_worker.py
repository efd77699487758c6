"""An engine in a worker process: the JSON-lines protocol across a real process boundary."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tooncrafter_studio.core.errors import Cancelled, EngineUnavailable, InputError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.crossfade import CrossfadeEngine
from tooncrafter_studio.engines.worker import WorkerEngine

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _keys(h=48, w=64):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def crossfade_worker():
    engine = WorkerEngine("crossfade", sys.executable, SOURCE_ROOT)
    yield engine
    engine.close()


def test_worker_gives_the_same_frames_and_progress_as_in_process(crossfade_worker):
    start, end = _keys()
    request = InterpolationRequest(start, end, [0.25, 0.5, 0.75])
    events = []
    remote = crossfade_worker.interpolate(request, progress=events.append)
    local = CrossfadeEngine().interpolate(request)
    assert len(remote.frames) == 3
    for a, b in zip(remote.frames, local.frames):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert remote.info["times"] == [0.25, 0.5, 0.75]
    assert [e.done for e in events] == [0, 1, 2, 3] and events[-1].total == 3
    assert crossfade_worker.probe().available
    assert crossfade_worker.worker_info["package"] == str(SOURCE_ROOT / "tooncrafter_studio")
    # the same process serves the next request
    pid = crossfade_worker._process.pid
    crossfade_worker.interpolate(InterpolationRequest(start, end, [0.5]))
    assert crossfade_worker._process.pid == pid


def test_cancel_crosses_the_process_boundary_and_the_worker_lives_on(crossfade_worker):
    start, end = _keys(1500, 1500)
    cancel = CancelToken()
    seen = threading.Event()

    def progress(event):
        if event.done >= 1:
            seen.set()
            cancel.cancel()

    began = time.monotonic()
    with pytest.raises(Cancelled):
        crossfade_worker.interpolate(InterpolationRequest(start, end, [i / 301 for i in range(1, 301)]),
                                     progress=progress, cancel=cancel)
    assert seen.is_set() and time.monotonic() - began < 20
    again = crossfade_worker.interpolate(InterpolationRequest(*_keys(), [0.5]))
    assert len(again.frames) == 1


def test_errors_keep_their_kind():
    engine = WorkerEngine("no-such-engine", sys.executable, SOURCE_ROOT)
    with pytest.raises(InputError, match="Unknown engine 'no-such-engine'"):
        engine.interpolate(InterpolationRequest(*_keys(), [0.5]))
    assert not engine.probe().available


def test_a_worker_that_dies_mid_request_is_reported_and_replaced(crossfade_worker):
    start, end = _keys(1500, 1500)

    def progress(event):
        if event.done >= 1 and crossfade_worker._process.poll() is None:
            crossfade_worker._process.kill()

    with pytest.raises(EngineUnavailable, match="stopped unexpectedly"):
        crossfade_worker.interpolate(InterpolationRequest(start, end, [i / 301 for i in range(1, 301)]),
                                     progress=progress)
    assert len(crossfade_worker.interpolate(InterpolationRequest(*_keys(), [0.5])).frames) == 1


def test_a_missing_interpreter_is_a_clear_error(tmp_path):
    engine = WorkerEngine("crossfade", tmp_path / "no-python", SOURCE_ROOT)
    result = engine.probe()
    assert not result.available and "could not start" in result.reason


def test_registry_uses_the_private_environment_when_torch_is_missing_here(tmp_path, monkeypatch):
    import importlib.util
    import json

    from tooncrafter_studio.engines import tooncrafter
    from tooncrafter_studio.engines.registry import create_engine
    from tooncrafter_studio.setup import engine_env

    env_dir = tmp_path / "env"
    python = engine_env.env_python(env_dir)
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    monkeypatch.setenv(engine_env.ENV_DIR_ENV, str(env_dir))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(tooncrafter.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    assert type(create_engine("tooncrafter")).__name__ == "ToonCrafterEngine"  # no finished env yet
    probe = create_engine("tooncrafter").probe()
    assert not probe.available and "engine install" in probe.reason
    (env_dir / engine_env.MARKER_FILE).write_text(json.dumps(
        {"version": 1, "backend": "cpu", "variant": "cpu", "index_url": "x", "pins": {}}))
    engine = create_engine("tooncrafter")
    assert isinstance(engine, WorkerEngine) and engine.python == str(python) and "[cpu]" in engine.label
    assert engine.capabilities.supports_prompt


def test_the_real_tooncrafter_engine_answers_through_a_worker(tmp_path):
    """configure and probe of the ToonCrafter engine itself, across the boundary (no torch import:
    the CPU device and a missing model file are decided before)."""
    engine = WorkerEngine("tooncrafter", sys.executable, SOURCE_ROOT)
    try:
        engine.configure({"device": "cpu", "model": tmp_path / "nope.ckpt"})
        result = engine.probe()
        assert not result.available and "nope.ckpt" in result.reason
    finally:
        engine.close()
