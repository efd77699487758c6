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


@pytest.fixture
def cpu_kind():
    """Inject the kind of CPU (native bf16 or not: diffusion/run/cpu_bf16.py) the engine runs on."""
    from tooncrafter_studio.diffusion.run import cpu_bf16

    yield cpu_bf16.set_override
    cpu_bf16.set_override(None)


@pytest.mark.parametrize("native, asked, used", [
    (True, None, "bf16"), (True, "fp16", "bf16"), (True, "fp32", "fp32"), (False, None, "fp32"),
])
def test_cpu_precision_follows_the_kind_of_cpu(tiny_model, cpu_kind, native, asked, used):
    """On a CPU with AVX-512 BF16 or AMX the default (and a saved GPU default, fp16) runs in bf16,
    --dtype fp32 opts out; elsewhere float32 as before. The provenance records what ran."""
    import copy

    cpu_kind(native)
    model = copy.deepcopy(tiny_model)
    seen = []
    handle = model.model.diffusion_model.out.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    params = {} if asked is None else {"dtype": asked}
    result = ToonCrafterEngine(model=model).interpolate(_request([0.5], **params))
    handle.remove()
    expected = {"bf16": torch.bfloat16, "fp32": torch.float32}[used]
    assert set(seen) == {expected}  # the UNet computed in that precision
    assert model.unet.out[2].weight.dtype == model.first_stage_model.decoder.conv_in.weight.dtype == expected
    assert result.info["params"]["dtype"] == used
    assert result.frames[0].std() > 1


def test_cpu_bf16_decode_overflow_is_decoded_again_in_float32(tiny_model, cpu_kind, caplog):
    """The CUDA rule on the CPU too: a bf16 decode that overflows is done again in float32."""
    import copy
    import logging

    cpu_kind(True)
    model = copy.deepcopy(tiny_model)
    poisoned = []

    def overflow_in_bf16(_module, _args, out):
        if out.dtype == torch.bfloat16:
            poisoned.append(1)
            return out * float("inf")
        return out

    model.first_stage_model.decoder.conv_in.register_forward_hook(overflow_in_bf16)
    with caplog.at_level(logging.WARNING):
        result = ToonCrafterEngine(model=model).interpolate(_request([0.5]))
    assert poisoned and "bf16" in caplog.text and "decoding this pass again in float32" in caplog.text
    assert result.info["params"]["dtype"] == "bf16" and result.frames[0].std() > 1
