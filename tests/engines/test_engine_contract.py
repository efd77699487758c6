"""The contract every registered engine that probes available must keep.

Parametrised over the registry, so an engine joins automatically when it becomes available here
(e.g. tooncrafter with a model on a CUDA machine). Keys are small so any engine stays quick.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_synthetic import disc_frame

from tooncrafter_studio.core.errors import Cancelled, InputError
from tooncrafter_studio.core.progress import CancelToken, ProgressEvent
from tooncrafter_studio.engines.base import Engine, InterpolationRequest
from tooncrafter_studio.engines.registry import create_engine, engine_ids


def _available_engines() -> list:
    params = []
    for engine_id in engine_ids():
        try:
            engine = create_engine(engine_id)
            probe = engine.probe()
        except Exception as exc:  # not installed yet / cannot be built here
            params.append(pytest.param(engine_id, marks=pytest.mark.skip(reason=f"cannot create: {exc}")))
            continue
        if probe.available:
            params.append(engine_id)
        else:
            params.append(pytest.param(engine_id, marks=pytest.mark.skip(reason=f"unavailable: {probe.reason}")))
    return params


ENGINES = _available_engines()


@pytest.fixture(params=ENGINES)
def engine(request) -> Engine:
    eng = create_engine(request.param)
    eng.load()
    yield eng
    eng.unload()


def _keys(dtype=np.uint8, alpha=False):
    a = disc_frame((50, 48))
    b = disc_frame((70, 48))
    if alpha:
        matte_a = np.zeros(a.shape[:2], np.uint8)
        matte_b = np.zeros(b.shape[:2], np.uint8)
        matte_a[20:76, 30:70] = 255
        matte_b[20:76, 50:90] = 255
        a, b = np.dstack([a, matte_a]), np.dstack([b, matte_b])
    if dtype == np.uint16:
        a, b = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    return a, b


def test_builtin_ids_are_registered():
    assert {"flow", "crossfade", "tooncrafter"} <= set(engine_ids())
    assert "flow" in [p if isinstance(p, str) else None for p in ENGINES]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("alpha", [False, True])
def test_shapes_and_dtype(engine, dtype, alpha):
    a, b = _keys(dtype, alpha)
    result = engine.interpolate(InterpolationRequest(a, b, [0.25, 0.5, 0.75], seed=1))
    assert len(result.frames) == 3
    for frame in result.frames:
        assert frame.shape == a.shape
        assert frame.dtype == a.dtype
    assert isinstance(result.info, dict)


def test_time_order_follows_request(engine):
    dark = np.full((40, 64, 3), 40, np.uint8)
    light = np.full((40, 64, 3), 220, np.uint8)
    times = [0.2, 0.5, 0.8]
    frames = engine.interpolate(InterpolationRequest(dark, light, times, seed=3)).frames
    means = [float(f.mean()) for f in frames]
    assert means[0] < means[1] < means[2], means
    assert 40 < means[0] and means[2] < 220
    if engine.capabilities.deterministic:
        backwards = engine.interpolate(InterpolationRequest(dark, light, times[::-1], seed=3)).frames
        for f, g in zip(frames, backwards[::-1]):
            np.testing.assert_array_equal(f, g)


def test_alpha_matte_is_kept_and_moves(engine):
    a, b = _keys(np.uint8, alpha=True)
    frame = engine.interpolate(InterpolationRequest(a, b, [0.5], seed=2)).frames[0]
    alpha = frame[..., 3].astype(np.float32)
    # Outside both keys' mattes nothing becomes opaque; inside the overlap it stays opaque.
    assert alpha[:, :25].max() <= 1 and alpha[:, 95:].max() <= 1
    assert alpha[30:66, 52:68].min() >= 250


def test_rejects_invalid_request(engine):
    a, b = _keys()
    with pytest.raises(InputError):
        engine.interpolate(InterpolationRequest(a, b, [1.0]))
    with pytest.raises(InputError):
        engine.interpolate(InterpolationRequest(a, b[:, :-2], [0.5]))


def test_progress_reports_steps(engine):
    a, b = _keys()
    events: list[ProgressEvent] = []
    engine.interpolate(InterpolationRequest(a, b, [0.25, 0.5, 0.75], seed=1), events.append)
    assert events, "no progress reported"
    assert all(e.stage for e in events)
    last_per_stage = {}
    for e in events:
        assert e.done >= last_per_stage.get(e.stage, 0)
        last_per_stage[e.stage] = e.done
    final = events[-1]
    assert final.total and final.done == final.total


def test_cancel_before_start_raises(engine):
    a, b = _keys()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.interpolate(InterpolationRequest(a, b, [0.5]), None, token)


def test_cancel_from_progress_callback_stops_work(engine):
    a, b = _keys()
    token = CancelToken()
    seen: list[ProgressEvent] = []

    def callback(event: ProgressEvent) -> None:
        seen.append(event)
        if event.done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.interpolate(InterpolationRequest(a, b, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), callback, token)
    assert seen[-1].done < seen[-1].total  # it stopped before finishing every frame
