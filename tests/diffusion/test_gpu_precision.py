"""What only a CUDA GPU can show (skipped without one; tools/gpu_check.sh runs them): real fp16/bf16
kernels against the float32 vectors, the attention kernel chosen, real peak memory against the
plan, fp16 faster than fp32, and torch.compile on CUDA."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.diffusion.checks import selftest  # noqa: E402
from tooncrafter_studio.diffusion.checks.precision import relative_error, tolerance, torch_dtype  # noqa: E402
from tooncrafter_studio.diffusion.nets.attention import sdpa_kernel_used  # noqa: E402
from tooncrafter_studio.diffusion.run import memory  # noqa: E402

pytestmark = pytest.mark.gpu

VECTORS = Path(os.environ.get("TOONCRAFTER_VECTORS")
               or Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "vectors")


def _dtypes():
    names = ["fp16"]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        names.append("bf16")
    return names


@pytest.fixture(scope="module")
def fp32_model():
    from tooncrafter_studio.diffusion.checks.verify_sampler import reduced_filled_model

    return reduced_filled_model()


@pytest.mark.parametrize("mode", memory.MODES)
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_e2e_vector_in_half_precision_on_cuda(fp32_model, dtype, mode):
    if dtype not in _dtypes():
        pytest.skip("no bf16 on this GPU")
    path = VECTORS / "e2e_reduced.npz"
    if not path.exists():
        pytest.skip("vectors not available")
    z = np.load(path)
    from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline

    model = copy.deepcopy(fp32_model)
    placement = memory.apply_memory_mode(model, mode, "cuda", torch_dtype(dtype))
    try:
        pipe = ToonCrafterPipeline(model, batch_cfg=placement.batch_cfg, lean_decode=placement.lean_decode,
                                   stage_hook=placement.stage_hook)
        draws = [torch.from_numpy(z[f"draw{i}"]) for i in range(len(z["draw_roles"]))]
        with torch.inference_mode():
            out = pipe.generate(torch.from_numpy(z["frame_a"]), torch.from_numpy(z["frame_b"]), str(z["prompt"]),
                                steps=4, cfg_scale=7.5, eta=1.0, frame_stride=10, noise=draws)
    finally:
        placement.remove()
    assert relative_error(out.latent, z["samples"]) <= tolerance("e2e_latent", dtype)
    assert relative_error(out.video[None], z["video"]) <= tolerance("e2e_video", dtype)


def test_attention_uses_a_fused_kernel_in_half_precision():
    for dtype in _dtypes():
        kernel = sdpa_kernel_used((16, 5, 2560, 64), torch_dtype(dtype), "cuda")
        assert kernel in ("flash", "memory-efficient", "cudnn"), (dtype, kernel)


def test_selftest_reduced_part_passes_on_cuda():
    report = selftest.run_selftest("cuda", full_size=False)
    assert report.passed, selftest.format_report(report)
    assert {r["dtype"] for r in report.reduced} >= {"fp16", "fp32"}


def test_full_size_step_memory_stays_within_the_plan():
    """Real allocator peaks of one full-size UNet step per mode against the memory plan's figure."""
    holder = selftest._UNetHolder(selftest.filled_full_unet())
    for mode in memory.MODES:
        row = selftest.run_full_step(holder, torch.device("cuda", 0), mode, "fp16", repeats=1)
        assert "error" not in row, row
        assert row["peak_bytes"] <= row["planned_bytes"], row


def test_fp16_step_is_faster_than_fp32_on_cuda(fp32_model):
    x = torch.randn((2, 8, 16, 40, 64), device="cuda")
    t = torch.tensor([699, 699], device="cuda")
    context = torch.randn((2, 333, 64), device="cuda")
    seconds = {}
    for name in ("fp32", "fp16"):
        unet = copy.deepcopy(fp32_model.unet).to("cuda", torch_dtype(name))
        with torch.inference_mode():
            unet(x.to(unet.out[2].weight.dtype), t, context.to(unet.out[2].weight.dtype))
            torch.cuda.synchronize()
            clock = time.perf_counter()
            for _ in range(3):
                unet(x.to(unet.out[2].weight.dtype), t, context.to(unet.out[2].weight.dtype))
            torch.cuda.synchronize()
        seconds[name] = time.perf_counter() - clock
    assert seconds["fp16"] < seconds["fp32"], seconds


def test_compiled_unet_matches_eager_on_cuda(fp32_model):
    from tooncrafter_studio.diffusion.run.compile import compile_unet

    unet = copy.deepcopy(fp32_model.unet).to("cuda", torch.float16)
    x = torch.randn((1, 8, 16, 8, 16), device="cuda", dtype=torch.float16)
    t = torch.tensor([500], device="cuda")
    context = torch.randn((1, 333, 64), device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        eager = unet(x, t, context)
        assert compile_unet(unet, "cuda", "high")
        compiled = unet(x, t, context)
    assert relative_error(compiled, eager) <= tolerance("unet", "fp16")
