"""Guards where half precision overflows: a NaN/inf latent fails the job naming the step, a decode
that overflows is done again in float32 (diffusers' force_upcast), and no black frame comes out."""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tooncrafter_studio.core.errors import NumericalError  # noqa: E402
from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline, float32_weights  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model():
    from tooncrafter_studio.cli.dryrun import dry_run_config
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(dry_run_config("tiny"), device="cpu")
    fill_module(model)
    return model


class Overflow(torch.nn.Module):
    """Scales up and back down: the identity in float32, inf in float16 (whose range ends at 65504)."""

    def forward(self, x):
        return (x * 1e6) / 1e6


def _keys():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _generate(model, **kwargs):
    start, end = _keys()
    return ToonCrafterPipeline(model)(start, end, prompt="x", steps=3, seed=5, **kwargs)


def test_inf_in_the_unet_fails_the_job_naming_the_step(tiny_model):
    calls = []

    def poison(_module, _args, output):
        calls.append(1)
        return output * float("inf") if len(calls) == 2 else output

    handle = tiny_model.model.register_forward_hook(poison)
    try:
        with pytest.raises(NumericalError) as info:
            _generate(tiny_model)
    finally:
        handle.remove()
    message = str(info.value)
    assert "denoising step 2 of 3" in message and "nothing was written" in message
    assert len(calls) == 2  # stopped at once, no decode


def test_half_precision_unet_overflow_suggests_bf16_or_fp32(tiny_model):
    tiny_model.model.to(torch.float16)
    handle = tiny_model.model.diffusion_model.out.register_forward_hook(lambda m, a, out: Overflow()(out))
    try:
        with pytest.raises(NumericalError, match="step 1 of 3.*bf16.*fp32"):
            _generate(tiny_model)
    finally:
        handle.remove()
        tiny_model.model.to(torch.float32)


def test_fp16_decode_overflow_is_decoded_again_in_float32(tiny_model, caplog):
    reference = _generate(tiny_model).frames  # all float32
    vae = tiny_model.first_stage_model
    vae.to(torch.float16)
    handle = vae.decoder.conv_in.register_forward_hook(lambda m, a, out: Overflow()(out))
    try:
        with caplog.at_level(logging.WARNING):
            out = _generate(tiny_model)
        weights = {p.dtype for p in vae.parameters()}
    finally:
        handle.remove()
        vae.to(torch.float32)
    assert "decoding this pass again in float32" in caplog.text
    assert weights == {torch.float16}  # the float32 copies were only for the retry
    assert np.isfinite(out.video.numpy()).all()
    # the retry is a float32 decode of a latent that came through the same float32 sampler: same frames
    assert np.abs(out.frames.astype(int) - reference.astype(int)).max() <= 2
    assert out.frames.std() > 1  # not a black (or any constant) video


def test_a_decode_that_overflows_in_float32_too_fails_rather_than_write_black_frames(tiny_model):
    handle = tiny_model.first_stage_model.decoder.conv_in.register_forward_hook(
        lambda m, a, out: out * float("inf"))
    try:
        with pytest.raises(NumericalError, match="even in float32"):
            _generate(tiny_model)
    finally:
        handle.remove()


def test_float32_weights_puts_back_the_very_same_tensors():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).half()
    before = [id(t) for t in (*module.parameters(), *module.buffers())]
    with float32_weights(module):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
        assert module(torch.ones(3, 2)).dtype == torch.float32
    assert [id(t) for t in (*module.parameters(), *module.buffers())] == before
    assert {p.dtype for p in module.parameters()} == {torch.float16}
