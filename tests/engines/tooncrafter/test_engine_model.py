"""The engine end to end on CPU with a tiny random ToonCrafter (the reduced config at 64x64):
our real pipeline, no checkpoint file (the model is injected through params)."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tooncrafter_studio.core.errors import Cancelled  # noqa: E402
from tooncrafter_studio.core.progress import CancelToken  # noqa: E402
from tooncrafter_studio.engines.base import InterpolationRequest  # noqa: E402
from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model():
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model

    config = dataclasses.replace(ToonCrafterConfig.reduced(), latent_size=(8, 8))  # 64 x 64 pixels
    model = build_model(config, device="cpu")
    fill_module(model)
    return model


def _keys():
    rng = np.random.default_rng(0)
    start = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)  # 3:2 keys, letterboxed into 64 x 64
    end = np.roll(start, 9, axis=1)
    return start, end


def _request(times, **params):
    start, end = _keys()
    params = {"steps": 2, "device": "cpu", **params}
    return InterpolationRequest(start, end, list(times), params=params, seed=7, prompt="a ball")


def test_generates_frames_at_source_size_with_progress(tiny_model):
    events = []
    engine = ToonCrafterEngine(model=tiny_model)
    result = engine.interpolate(_request([0.25, 0.5]), progress=events.append)
    assert [f.shape for f in result.frames] == [(60, 90, 3)] * 2
    assert all(f.dtype == np.uint8 for f in result.frames)
    assert result.info["model_size"] == [64, 64] and result.info["memory_mode"] == "high"
    stages = [e.stage for e in events]
    assert stages.index("encode") < stages.index("denoise") < stages.index("decode") < stages.index("finish")
    steps = [e.done for e in events if e.stage == "denoise" and e.done]
    assert steps == [1, 2]
    assert result.info["seed"] == 7 and result.info["params"]["prompt"] == "a ball"
    # Not a blank or constant image: the tiny model's frames vary.
    assert all(f.std() > 1 for f in result.frames)


def test_cancel_during_denoise_skips_decode(tiny_model):
    events = []
    cancel = CancelToken()

    def progress(event):
        events.append(event)
        if event.stage == "denoise" and event.done == 1:
            cancel.cancel()

    with pytest.raises(Cancelled):
        ToonCrafterEngine(model=tiny_model).interpolate(_request([0.5], steps=3), progress, cancel)
    assert "decode" not in [e.stage for e in events]
    assert max(e.done for e in events if e.stage == "denoise") == 1
