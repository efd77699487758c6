"""What the dry run cannot see on its own (issue 21's risks), each shown on the CPU or on fake tensors.

Every test here failed before its fix: the OOM mid-transfer left weights on the device, cuBLAS and
cuDNN allocation failures were raw errors, a forced kernel failed on shapes it cannot take, ...
"""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import OutOfMemory  # noqa: E402
from tooncrafter_studio.diffusion.run import memory  # noqa: E402


def _three_linears() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))


# -- 2: an OOM in the middle of a weight transfer ---------------------------------------------------

def test_oom_half_way_through_a_transfer_leaves_nothing_on_the_device(monkeypatch):
    model = _three_linears()
    unit = memory._Offloaded([model], "meta")
    real_to = torch.Tensor.to
    calls = {"n": 0}

    def failing_to(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the third of six tensors on its way over
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", failing_to)
    with pytest.raises(torch.OutOfMemoryError):
        unit.load()
    monkeypatch.setattr(torch.Tensor, "to", real_to)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert not unit.on_device
    unit.load()  # a later try starts clean and completes
    assert {p.device.type for p in model.parameters()} == {"meta"}
    unit.unload()
    assert {p.device.type for p in model.parameters()} == {"cpu"}


# -- 3: allocation failures that do not say "out of memory" ----------------------------------------

@pytest.mark.parametrize("message", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
])
def test_cublas_and_cudnn_allocation_failures_retry_one_mode_lower(message):
    tried = []

    def attempt(mode):
        tried.append(mode)
        if mode == "high":
            raise RuntimeError(message)
        return mode

    assert memory.is_out_of_memory(RuntimeError(message))
    assert memory.run_with_oom_retry(attempt, "high") == "balanced"
    assert tried == ["high", "balanced"]


def test_an_allocation_failure_in_the_lowest_mode_is_reported_as_out_of_memory():
    def attempt(mode):
        raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")

    with pytest.raises(OutOfMemory, match="low memory mode"):
        memory.run_with_oom_retry(attempt, "low")


def test_other_cudnn_errors_are_not_taken_for_out_of_memory():
    assert not memory.is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))  # not a runtime allocation failure


# -- 1: a forced attention kernel, per call ---------------------------------------------------------

from tooncrafter_studio.diffusion.nets import attention as attn  # noqa: E402


@pytest.fixture
def forced_kernel():
    yield attn.set_sdpa_kernel
    attn.set_sdpa_kernel("auto")


def test_forced_flash_and_cudnn_give_way_where_they_cannot_take_the_call(caplog):
    attn._fallbacks_logged.clear()
    with caplog.at_level(logging.INFO, logger=attn.__name__):
        # the Resampler attends in float32 (12 heads of 64): flash and cuDNN take only half precision
        assert attn.kernel_for_call("flash", torch.float32, 64, "cuda") == "efficient"
        assert attn.kernel_for_call("flash", torch.float32, 64, "cuda") == "efficient"
        assert attn.kernel_for_call("cudnn", torch.float32, 64, "cuda") == "efficient"
        # the VAE's mid-block attention: one head of 512
        assert attn.kernel_for_call("flash", torch.float16, 512, "cuda") == "efficient"
        assert attn.kernel_for_call("cudnn", torch.bfloat16, 512, "cuda") == "efficient"
    # the UNet's attention (head size 64, fp16) keeps the kernel asked for
    assert attn.kernel_for_call("flash", torch.float16, 64, "cuda") == "flash"
    assert attn.kernel_for_call("cudnn", torch.float16, 64, "cuda") == "cudnn"
    assert attn.kernel_for_call("math", torch.float32, 512, "cuda") == "math"
    said = [r.getMessage() for r in caplog.records if "instead" in r.getMessage()]
    assert len(said) == 4, said  # once per kernel and reason, not once per call


def test_forced_kernel_reaches_sdpa_as_chosen_per_call(monkeypatch, forced_kernel):
    chosen = []
    monkeypatch.setattr(attn, "kernel_for_call", lambda requested, dtype, d, dev: chosen.append(
        (requested, dtype, d)) or "math")
    forced_kernel("flash")
    q = torch.randn(1, 2, 8, 16)
    out = attn.attention(q, q, q)
    assert chosen == [("flash", torch.float32, 16)]
    assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, q, q), atol=1e-6)


def test_math_kernel_takes_queries_in_chunks_with_the_same_result(monkeypatch, forced_kernel):
    q = torch.randn(1, 2, 300, 8)
    k = torch.randn(1, 2, 50, 8)
    v = torch.randn(1, 2, 50, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    budget = 40 * 2 * 50 * 4  # scores of 40 queries
    monkeypatch.setattr(attn, "MATH_SCORES_BUDGET_BYTES", budget)
    real = torch.nn.functional.scaled_dot_product_attention
    scores = []

    def recording(q_, k_, v_, *a, **kw):
        scores.append(q_.shape[0] * q_.shape[1] * q_.shape[2] * k_.shape[2] * 4)
        return real(q_, k_, v_, *a, **kw)

    monkeypatch.setattr(attn.F, "scaled_dot_product_attention", recording)
    forced_kernel("math")
    out = attn.attention(q, k, v)
    assert torch.allclose(out, expected, atol=1e-6)
    assert len(scores) == 8 and max(scores) <= budget


def test_math_kernel_keeps_the_decoders_fusion_attention_bounded():
    # the fusion attention at 1/4 resolution: 16 frames x 80 x 128 queries to 2 x 80 x 128 reference pixels
    batch, heads, queries, keys = 1, 8, 16 * 80 * 128, 2 * 80 * 128
    whole = batch * heads * queries * keys * 4
    assert whole > 50 * 1024**3
    chunk = attn.math_query_chunk(batch, heads, queries, keys)
    assert batch * heads * chunk * keys * 4 <= attn.MATH_SCORES_BUDGET_BYTES


# -- 4: the float32 redo of an overflowed decode ----------------------------------------------------

class _Overflow(torch.nn.Module):
    def forward(self, x):
        return (x * 1e6) / 1e6  # the identity in float32, inf in float16


@pytest.fixture(scope="module")
def tiny_model():
    pytest.importorskip("open_clip")
    from tooncrafter_studio.cli.dryrun import dry_run_config
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(dry_run_config("tiny"), device="cpu")
    fill_module(model)
    return model


def _overflowing_fp16_decode(tiny_model, oom_in_float32: int):
    """A tiny generation whose fp16 decode overflows and whose first `oom_in_float32` float32
    decodes run out of memory."""
    import numpy as np

    from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline

    vae = tiny_model.first_stage_model
    vae.to(torch.float16)
    failures = {"left": oom_in_float32, "float32_tries": 0}

    def hook(_m, args, out):
        if args[0].dtype == torch.float32:
            failures["float32_tries"] += 1
            if failures["left"]:
                failures["left"] -= 1
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return _Overflow()(out)

    handle = vae.decoder.conv_in.register_forward_hook(hook)
    rng = np.random.default_rng(3)
    keys = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    try:
        return ToonCrafterPipeline(tiny_model)(*keys, prompt="x", steps=2, seed=5), failures
    finally:
        handle.remove()
        vae.to(torch.float32)


def test_a_float32_redecode_that_runs_out_of_memory_is_done_again_piece_by_piece(tiny_model):
    import numpy as np

    out, failures = _overflowing_fp16_decode(tiny_model, oom_in_float32=1)
    assert failures["left"] == 0 and failures["float32_tries"] >= 2  # whole (out of memory), then lean
    assert np.isfinite(out.video.numpy()).all() and out.frames.std() > 1


def test_a_float32_redecode_that_never_fits_names_the_overflow_and_is_not_retried_as_oom(tiny_model):
    from tooncrafter_studio.core.errors import NumericalError

    with pytest.raises(NumericalError, match="float16 decode overflowed.*ran out of GPU memory") as info:
        _overflowing_fp16_decode(tiny_model, oom_in_float32=5)
    assert not memory.is_out_of_memory(info.value)  # so the engine does not rerun the generation lower
    tried = []

    def attempt(mode):
        tried.append(mode)
        raise info.value

    with pytest.raises(NumericalError):
        memory.run_with_oom_retry(attempt, "high")
    assert tried == ["high"]


# -- 7: fp32 without TF32; the low mode's streamed blocks from pageable memory ----------------------

@pytest.fixture
def tf32_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_placing_a_float32_model_on_cuda_switches_tf32_on(tf32_flags):
    from tooncrafter_studio.diffusion.checks import dryrun

    with dryrun.dry_run_session("cuda", dryrun.CARDS["24gb"]):
        placement = memory.apply_memory_mode(_three_linears(), "balanced", "cuda", torch.float32)
    placement.remove()
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_half_precision_and_the_cpu_leave_tf32_alone(tf32_flags):
    memory.apply_memory_mode(_three_linears(), "high", "cpu", torch.float32).remove()
    assert not memory.enable_tf32("cuda", torch.float16)
    assert not (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def test_low_mode_keeps_its_streamed_blocks_in_pinned_memory(monkeypatch):
    from tooncrafter_studio.cli.dryrun import dry_run_config
    from tooncrafter_studio.diffusion.checks import dryrun
    from tooncrafter_studio.diffusion.nets.model import build_model

    pinned = []

    def pin(tensor):  # (no CUDA here: a clone stands for the page-locked copy)
        pinned.append(tensor)
        return tensor.detach().clone()

    monkeypatch.setattr(memory, "pin_tensor", pin)
    model = build_model(dry_run_config("tiny"), device="cpu")
    unet = model.model.diffusion_model
    with dryrun.dry_run_session("cuda", dryrun.CARDS["8gb"]):
        placement = memory.apply_memory_mode(model, "low", "cuda", torch.float16)
        streamed = sum(len(unit._entries) for unit in placement.streamed)
        resident = {id(p) for name in memory.UNET_RESIDENT for p in getattr(unet, name).parameters()}
        placement.remove()
    assert streamed and len(pinned) == streamed
    assert not resident & {id(t) for t in pinned}  # only what visits for every call
    # after the run the module holds the pinned copies, not a second set of weights
    held = {p.data_ptr() for p in unet.parameters()}
    assert all(unit._entries[0][3].data_ptr() in held for unit in placement.streamed)


# -- what only a real card shows (skipped without CUDA; tools/gpu_check.sh runs them) ---------------

@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["flash", "cudnn"])
@pytest.mark.parametrize(("shape", "dtype"), [((1, 12, 16, 64), torch.float32),  # the Resampler
                                              ((16, 1, 2560, 512), torch.float16)])  # the VAE mid-block
def test_forced_fused_kernels_run_the_calls_they_cannot_take_on_cuda(kernel, shape, dtype, forced_kernel):
    q = torch.randn(shape, device="cuda", dtype=dtype)
    expected = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    forced_kernel(kernel)
    out = attn.attention(q, q, q)
    assert torch.allclose(out.float(), expected.float(), atol=2e-2)


@pytest.mark.gpu
def test_math_kernel_on_cuda_keeps_the_fusion_attention_under_its_budget(forced_kernel):
    q = torch.randn(1, 8, 16 * 40 * 64, 64, device="cuda", dtype=torch.float16)  # 1/8 resolution
    k = torch.randn(1, 8, 2 * 40 * 64, 64, device="cuda", dtype=torch.float16)
    forced_kernel("math")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    attn.attention(q, k, k)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before <= 3 * attn.MATH_SCORES_BUDGET_BYTES


@pytest.mark.gpu
def test_low_mode_streams_its_blocks_from_pinned_memory_on_cuda():
    from tooncrafter_studio.cli.dryrun import dry_run_config
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(dry_run_config("tiny"), device="cpu")
    placement = memory.apply_memory_mode(model, "low", "cuda", torch.float16)
    try:
        assert placement.streamed
        assert all(cpu.is_pinned() for unit in placement.streamed for *_, cpu in unit._entries)
    finally:
        placement.remove()
