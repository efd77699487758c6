"""Half precision on the CPU: the reduced model (fill-rule weights) in fp16 and bf16 against float32,
within the tolerances of diffusion/checks/precision.py, and the parts the original keeps in float32.

The CPU has no fast half kernels here (AVX2 only: convolutions fall back to slow reference code),
so the make-test runs use the vectors' cheapest inputs: the UNet on `unet_reduced.npz`'s 4-frame
call, a 2-frame VAE decode chunk, and full-width single blocks with few frames or pixels. Measured
at the vectors' full sizes (bf16): UNet `out` 3.0e-2, VAE `final` 1.7e-2, e2e samples 9.3e-2 and
video 1.2e-1 (fp16 UNet `out` 4.1e-3); see precision.py for the limits. The whole 4-step
e2e in half precision (about 7 CPU-minutes per precision here) runs on CUDA in the gpu tests, and
on the CPU when TOONCRAFTER_HALF_E2E=1 is set.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.diffusion.checks.fill import fill_module  # noqa: E402
from tooncrafter_studio.diffusion.checks.precision import relative_error, tolerance, torch_dtype  # noqa: E402
from tooncrafter_studio.diffusion.nets.ae_blocks import ResnetBlock  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet import timestep_embedding  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet_blocks import GroupNorm32, SpatialTransformer, TemporalTransformer  # noqa: E402
from tooncrafter_studio.diffusion.run import memory  # noqa: E402

# The shared vectors next to the checkout (conftest's place); TOONCRAFTER_VECTORS points elsewhere.
VECTORS = Path(os.environ.get("TOONCRAFTER_VECTORS")
               or Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "vectors")
HALF = ["fp16", "bf16"]


def _vector(name: str):
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    return np.load(path)


@pytest.fixture(scope="module")
def fp32_model():
    from tooncrafter_studio.diffusion.checks.verify_sampler import reduced_filled_model

    return reduced_filled_model()


def _half(model, dtype: str):
    work = copy.deepcopy(model)
    memory.apply_memory_mode(work, "high", "cpu", torch_dtype(dtype))
    return work


# ------------------------------------------------------------------------------------------------
# Whole-model comparisons


@pytest.mark.parametrize("dtype", HALF)
def test_reduced_unet_pass_in_half_precision_stays_within_tolerance(fp32_model, dtype):
    z = _vector("unet_reduced.npz")
    unet = _half(fp32_model, dtype).model.diffusion_model
    x = torch.cat([torch.from_numpy(z["x_T4"]), torch.from_numpy(z["c_concat_T4"])], dim=1)
    t, context, fs = (torch.from_numpy(z[k]) for k in ("t", "context", "fs"))
    with torch.inference_mode():
        out = unet(x.to(torch_dtype(dtype)), t, context.to(torch_dtype(dtype)), fs)
    assert out.dtype == torch_dtype(dtype)
    error = relative_error(out, z["out_T4"])
    assert error <= tolerance("unet", dtype), f"{dtype}: {error:.2e}"
    assert error > 1e-5  # it really ran in half precision (float32 agrees to ~2e-6)


@pytest.mark.parametrize("dtype", HALF)
def test_reduced_vae_decode_in_half_precision_stays_within_tolerance(fp32_model, dtype):
    z = _vector("vae_reduced.npz")
    refs = [torch.from_numpy(z[f"hidden{i}"]) for i in range(5)]
    latent = torch.from_numpy(z["samples"])[:, :, :2] / 0.18215  # a 2-frame chunk keeps the CPU time low
    with torch.inference_mode():
        expected = fp32_model.first_stage_model.decode_chunk(latent, refs)
        vae = _half(fp32_model, dtype).first_stage_model
        got = vae.decode_chunk(latent.to(torch_dtype(dtype)), [r.to(torch_dtype(dtype)) for r in refs])
    error = relative_error(got, expected)
    assert error <= tolerance("vae", dtype), f"{dtype}: {error:.2e}"
    assert error > 1e-5


@pytest.mark.skipif(os.environ.get("TOONCRAFTER_HALF_E2E") != "1",
                    reason="about 7 CPU-minutes per precision; set TOONCRAFTER_HALF_E2E=1 (runs on CUDA in the gpu tests)")
@pytest.mark.parametrize("dtype", HALF)
def test_reduced_e2e_in_half_precision_matches_the_vectors(fp32_model, dtype):
    from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline

    z = _vector("e2e_reduced.npz")
    draws = [torch.from_numpy(z[f"draw{i}"]) for i in range(len(z["draw_roles"]))]
    pipe = ToonCrafterPipeline(_half(fp32_model, dtype))
    with torch.inference_mode():
        out = pipe.generate(torch.from_numpy(z["frame_a"]), torch.from_numpy(z["frame_b"]), str(z["prompt"]),
                            steps=4, cfg_scale=7.5, eta=1.0, frame_stride=10, noise=draws)
    assert relative_error(out.latent, z["samples"]) <= tolerance("e2e_latent", dtype)
    assert relative_error(out.video[None], z["video"]) <= tolerance("e2e_video", dtype)


# ------------------------------------------------------------------------------------------------
# Full-width single blocks (real channel widths and 40x64 latent size, few frames)


def _filled(module, prefix: str):
    module = module.eval()
    fill_module(module, prefix)
    return module


def test_full_width_spatial_transformer_in_bf16():
    block = _filled(SpatialTransformer(320, 5, 64, 1, 1024, image_tokens=True), "model.diffusion_model.input_blocks.1.1.")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((2, 320, 40, 64), generator=gen).contiguous(memory_format=torch.channels_last)
    context = torch.randn((2, 77 + 16, 1024), generator=gen)
    with torch.inference_mode():
        expected = block(x, context)
        got = copy.deepcopy(block).to(torch.bfloat16)(x.bfloat16(), context.bfloat16())
    assert relative_error(got, expected) <= tolerance("block", "bf16")


def test_full_width_temporal_transformer_in_bf16():
    block = _filled(TemporalTransformer(320, 5, 64, 1), "model.diffusion_model.input_blocks.1.2.")
    gen = torch.Generator().manual_seed(2)
    # 16 frames x 320 channels as at full size; 10x64 of the 40x64 pixels (each pixel's sequence is
    # independent, so fewer pixels change nothing but the time)
    x = torch.randn((16, 320, 10, 64), generator=gen).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = block(x, 1)
        got = copy.deepcopy(block).to(torch.bfloat16)(x.bfloat16(), 1)
    assert relative_error(got, expected) <= tolerance("block", "bf16")


def test_full_width_vae_up_block_in_bf16():
    """The decoder's first up level's res-block (512 channels at the 40x64 latent), one frame: the
    convolutions dominate and are the slow half kernels on this CPU."""
    block = _filled(ResnetBlock(512, 512), "first_stage_model.decoder.up.3.block.0.").to(memory_format=torch.channels_last)
    # channels-last: the CPU's bf16 convolution is ~30x slower on NCHW tensors (its reference kernel)
    x = torch.randn((1, 512, 40, 64), generator=torch.Generator().manual_seed(3)).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = block(x)
        got = copy.deepcopy(block).to(torch.bfloat16)(x.bfloat16())
    assert relative_error(got, expected) <= tolerance("block", "bf16")


# ------------------------------------------------------------------------------------------------
# What stays float32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_group_norm_runs_in_float32_and_rounds_once(dtype):
    norm = GroupNorm32(32, 64, eps=1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 64))
        norm.bias.copy_(torch.linspace(-0.1, 0.1, 64))
    x = (torch.randn((2, 64, 8, 8), generator=torch.Generator().manual_seed(0)) * 3 + 40).to(dtype)
    expected = torch.nn.functional.group_norm(x.float(), 32, norm.weight.float(), norm.bias.float(), 1e-5).to(dtype)
    assert torch.equal(norm(x), expected)


def test_vae_norms_accept_half_weights():
    """Defect found: the VAE's 2-D GroupNorms ran plain in half precision and its temporal ones fed
    float32 inputs to half gains (a mixed-dtype error on the CPU); now all compute in float32."""
    from tooncrafter_studio.diffusion.nets.ae_blocks import Float32GroupNorm

    block = ResnetBlock(32, 64).to(torch.bfloat16)
    assert isinstance(block.norm1, Float32GroupNorm)
    out = block(torch.randn((1, 32, 4, 4)).bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_timestep_embedding_is_computed_in_float32_before_the_cast(fp32_model):
    unet = _half(fp32_model, "bf16").model.diffusion_model
    seen = {}
    handle = unet.time_embed[0].register_forward_pre_hook(lambda _m, args: seen.setdefault("in", args[0]))
    t = torch.tensor([999, 421])
    x = torch.zeros((2, 8, 2, 8, 16), dtype=torch.bfloat16)
    try:
        with torch.inference_mode():
            unet(x, t, torch.zeros((2, 333, 64), dtype=torch.bfloat16))
    finally:
        handle.remove()
    exact = timestep_embedding(t, 32)
    assert exact.dtype == torch.float32
    assert torch.equal(seen["in"], exact.to(torch.bfloat16))
    # Why it matters: the sinusoid of bf16-rounded arguments is a different embedding.
    rounded = torch.cat([torch.cos(t[:, None].bfloat16() * 1.0), torch.sin(t[:, None].bfloat16() * 1.0)], -1)
    assert (rounded.float() - exact[:, [0, 16]]).abs().max() > 0.05


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["channels_last", "video", "contiguous"])  # contiguous: the cast path
def test_cpu_group_norm_without_the_float32_copy_is_the_cast_bit_for_bit(dtype, layout):
    """The CPU path hands the half activation to PyTorch's kernel with float32 weights (no float32
    copy); it must give exactly the numbers of casting, in every layout the UNet and VAE use."""
    from tooncrafter_studio.diffusion.nets.ae_blocks import Float32GroupNorm
    from tooncrafter_studio.diffusion.nets.unet_blocks import video_group_norm

    gen = torch.Generator().manual_seed(4)
    norm = GroupNorm32(32, 64, eps=1e-6)
    vae_norm = Float32GroupNorm(32, 64, eps=1e-6)
    with torch.no_grad():
        for n in (norm, vae_norm):
            n.weight.copy_(1 + 0.1 * torch.randn(64, generator=gen))
            n.bias.copy_(0.02 * torch.randn(64, generator=gen))
    x = (torch.randn((8, 64, 6, 10), generator=gen) * 4 + 3).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)

    weight, bias = norm.weight.detach().clone(), norm.bias.detach().clone()
    vae_norm.load_state_dict(norm.state_dict())

    def cast(v):
        return torch.nn.functional.group_norm(v.float(), 32, weight.to(dtype).float(), bias.to(dtype).float(),
                                              1e-6).to(dtype)

    if layout == "video":  # frames as (B·T, C, H, W), statistics across the 4 frames of each of 2 videos
        x = x.contiguous(memory_format=torch.channels_last)
        got = video_group_norm(norm.to(dtype), x, batch=2)
        video = x.permute(0, 2, 3, 1).reshape(2, 4 * 6, 10, 64).permute(0, 3, 1, 2)
        expected = cast(video).permute(0, 2, 3, 1).reshape(8, 6, 10, 64).permute(0, 3, 1, 2)
        vae_got = vae_norm.to(dtype)(x.view(2, 4, 64, 6, 10).transpose(1, 2))
        vae_expected = cast(x.view(2, 4, 64, 6, 10).transpose(1, 2).reshape(2, 64, 24, 10)).view(2, 64, 4, 6, 10)
    else:
        got, expected = norm.to(dtype)(x), cast(x)
        vae_got, vae_expected = vae_norm.to(dtype)(x), cast(x)
    assert got.dtype == dtype and torch.equal(got, expected)
    assert vae_got.dtype == dtype and torch.equal(vae_got, vae_expected)


def test_chunked_bf16_unet_agrees_with_the_unchunked_one(fp32_model, monkeypatch):
    """Chunks write their results straight into the output (ResBlock, spatial transformer, the
    feed-forward's last projection). In bf16 the kernels block smaller batches differently (oneDNN),
    so chunks round differently: within the bf16 tolerance, and both as far from float32 as that."""
    from tooncrafter_studio.diffusion.nets import unet_blocks

    unet = _half(fp32_model, "bf16").model.diffusion_model
    gen = torch.Generator().manual_seed(5)
    x = torch.randn((1, 8, 4, 8, 16), generator=gen).bfloat16()
    args = (x, torch.tensor([500]), torch.randn((1, 333, 64), generator=gen).bfloat16(), torch.tensor([10]))
    monkeypatch.setattr(unet_blocks, "CHUNK_ELEMENTS", 1 << 30)
    monkeypatch.setattr(unet_blocks, "FF_CHUNK_ELEMENTS", 1 << 30)
    with torch.inference_mode():
        whole = unet(*args)
    monkeypatch.setattr(unet_blocks, "CHUNK_ELEMENTS", 1 << 11)
    monkeypatch.setattr(unet_blocks, "FF_CHUNK_ELEMENTS", 1 << 11)
    with torch.inference_mode():
        assert len(unet_blocks.chunk_ranges(4, 32 * 8 * 16)) > 1
        chunked = unet(*args)
    with torch.inference_mode():
        reference = fp32_model.model.diffusion_model(x.float(), *args[1:2], args[2].float(), args[3])
    assert relative_error(chunked, whole) <= tolerance("unet", "bf16")
    assert relative_error(chunked, reference) <= tolerance("unet", "bf16")
    assert relative_error(whole, reference) <= tolerance("unet", "bf16")
