"""CUDA runs (skipped without a GPU): fp16 weights, every memory mode, same frames in each."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.engines.base import InterpolationRequest  # noqa: E402
from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine  # noqa: E402

pytestmark = pytest.mark.gpu


def _tiny_model():
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(dataclasses.replace(ToonCrafterConfig.reduced(), latent_size=(8, 8)), device="cpu")
    fill_module(model)
    return model


def _request(memory, dtype="fp16"):
    rng = np.random.default_rng(0)
    start = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    end = np.roll(start, 8, axis=1)
    return InterpolationRequest(start, end, [0.5], params={"steps": 3, "device": "cuda", "memory": memory,
                                                            "dtype": dtype}, seed=3)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_memory_modes_give_the_same_frames_on_cuda(dtype):
    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    frames = {}
    for mode in ("high", "balanced", "low"):
        engine = ToonCrafterEngine(model=_tiny_model())
        result = engine.interpolate(_request(mode, dtype))
        assert result.info["memory_mode"] == mode
        frames[mode] = result.frames[0].astype(int)
        engine.unload()
    # Weights only move between devices; the lean decode and unbatched CFG differ by rounding only.
    for mode in ("balanced", "low"):
        assert np.abs(frames[mode] - frames["high"]).max() <= 3, mode


def test_fp16_cuda_close_to_fp32_cpu():
    cpu = ToonCrafterEngine(model=_tiny_model()).interpolate(_cpu_request())
    gpu = ToonCrafterEngine(model=_tiny_model()).interpolate(_request("high"))
    assert np.abs(cpu.frames[0].astype(int) - gpu.frames[0].astype(int)).mean() < 4


def _cpu_request():
    req = _request("high")
    req.params = {**req.params, "device": "cpu"}
    return req


def test_probe_reports_free_memory_and_mode(tmp_path):
    engine = ToonCrafterEngine(backend=lambda *a, **k: None)
    result = engine.probe()
    assert "free" in result.reason and "memory mode" in result.reason
