"""Attention kernels: PyTorch's fused scaled-dot-product attention, xformers when installed and asked for.

Nothing here materialises the full attention matrix, so the decoder's fusion attention and the
UNet's spatial attention stay within memory at full size.

Precision: every SDPA kernel accumulates the softmax in float32 for fp16/bf16 inputs (flash and
memory-efficient by design; the math kernel upcasts unless `allow_fp16_bf16_reduction_math_sdp`
is switched on, which we never do), so half-precision attention keeps the original's float32
softmax without our code casting anything.

SDPA kernel choice: `set_sdpa_kernel("auto" | "flash" | "efficient" | "cudnn" | "math")` restricts
PyTorch's choice (auto: PyTorch picks, flash first), per call: a forced flash or cuDNN gives way to
the memory-efficient kernel where it cannot take the call (float32, head size over its limit), and
the math kernel takes its queries in chunks so its score matrix stays bounded. `sdpa_kernel_used`
tells which one runs for a given shape, dtype and device (the self-test reports it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_backend = "sdpa"  # "sdpa" | "xformers"
SDPA_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")
_sdpa_kernel = "auto"
# aten operator -> the kernel's name as the self-test reports it
_SDPA_OPS = {
    "_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "memory-efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_safe_softmax": "math",
    "_softmax": "math",
}


def available_backends() -> list[str]:
    backends = ["sdpa"]
    try:
        import xformers.ops  # noqa: F401
    except Exception:
        return backends
    return backends + ["xformers"]


def set_backend(name: str) -> None:
    """Choose the kernel; "xformers" only when it is importable (it is an optional extra)."""
    global _backend
    if name not in available_backends():
        raise ValueError(f"Attention backend '{name}' is not available here ({', '.join(available_backends())}).")
    _backend = name
    log.info("Attention backend: %s", name)


def get_backend() -> str:
    return _backend


def set_sdpa_kernel(name: str) -> None:
    """Restrict the SDPA kernel ("auto" lets PyTorch choose); a kernel that cannot run a call makes
    that call fail with PyTorch's reason, so only force one to compare or to work around a bug."""
    global _sdpa_kernel
    if name not in SDPA_KERNELS:
        raise ValueError(f"Unknown SDPA kernel '{name}': use one of {', '.join(SDPA_KERNELS)}.")
    _sdpa_kernel = name
    log.info("SDPA kernel: %s", name)


def get_sdpa_kernel() -> str:
    return _sdpa_kernel


@contextlib.contextmanager
def _kernel_choice(kernel: str | None = None) -> Iterator[None]:
    kernel = kernel or _sdpa_kernel
    if kernel == "auto":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[kernel]
    with sdpa_kernel([backend]):
        yield


def sdpa_kernel_used(shape: tuple[int, int, int, int], dtype: torch.dtype, device: torch.device | str) -> str:
    """The SDPA kernel PyTorch runs for (batch, heads, tokens, head_dim) inputs, seen by recording
    the operators one call dispatches; "failed: ..." when none can run it."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[str] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    q = torch.zeros(shape, dtype=dtype, device=device)
    try:
        with Recorder():
            attention(q, q, q)
    except RuntimeError as exc:
        return f"failed: {str(exc).splitlines()[0][:120]}"
    names = [_SDPA_OPS[name] for name in seen if name in _SDPA_OPS]
    return names[0] if names else "unknown (" + ", ".join(sorted(set(seen))[:4]) + ")"


# What the forced fused kernels take on CUDA: flash and cuDNN run only fp16/bf16 and head sizes up to
# these (the Resampler attends in float32; the VAE's mid-block attention has one head of 512).
FUSED_HEAD_DIM_LIMIT = {"flash": 256, "cudnn": 128}
HALF_DTYPES = (torch.float16, torch.bfloat16)
# The math kernel materialises the float32 score matrix: its queries are taken in chunks whose scores
# stay under this (the decoder's fusion attention would otherwise build ~50 GiB of them).
MATH_SCORES_BUDGET_BYTES = 512 * 1024**2
_fallbacks_logged: set[tuple[str, str]] = set()


def kernel_for_call(requested: str, dtype: torch.dtype, head_dim: int, device_type: str) -> str:
    """The kernel one call runs when `requested` is forced: flash and cuDNN give way to the
    memory-efficient kernel on CUDA where they cannot take the dtype or the head size (said once
    per reason in the log)."""
    if requested not in FUSED_HEAD_DIM_LIMIT or device_type != "cuda":
        return requested
    reason = None
    if dtype not in HALF_DTYPES:
        reason = f"it takes only fp16/bf16 and this attention runs in {str(dtype).removeprefix('torch.')}"
    elif head_dim > FUSED_HEAD_DIM_LIMIT[requested]:
        reason = f"it takes head sizes up to {FUSED_HEAD_DIM_LIMIT[requested]} and this attention has {head_dim}"
    if reason is None:
        return requested
    if (requested, reason) not in _fallbacks_logged:
        _fallbacks_logged.add((requested, reason))
        log.info("SDPA kernel %s: the memory-efficient kernel runs this call instead (%s).", requested, reason)
    return "efficient"


def math_query_chunk(batch: int, heads: int, queries: int, keys: int, budget: int | None = None) -> int:
    """How many queries one math-kernel call may take so that its float32 scores fit `budget`."""
    per_query = max(1, batch * heads * keys * 4)
    return max(1, min(queries, (budget or MATH_SCORES_BUDGET_BYTES) // per_query))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v for tensors shaped (batch, heads, tokens, head_dim); no mask, no dropout."""
    if _backend == "xformers" and q.is_cuda:
        import xformers.ops as xops

        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    if _sdpa_kernel == "auto":
        return F.scaled_dot_product_attention(q, k, v)
    kernel = kernel_for_call(_sdpa_kernel, q.dtype, q.shape[-1], q.device.type)
    with _kernel_choice(kernel):
        if kernel != "math":
            return F.scaled_dot_product_attention(q, k, v)
        b, h, n, _ = q.shape
        chunk = math_query_chunk(b, h, n, k.shape[-2])
        if chunk >= n:
            return F.scaled_dot_product_attention(q, k, v)
        return torch.cat([F.scaled_dot_product_attention(q[:, :, i:i + chunk], k, v) for i in range(0, n, chunk)],
                         dim=2)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads·d) -> (B, heads, N, d)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads·d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
