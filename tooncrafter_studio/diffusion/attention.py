"""Attention kernels: PyTorch's fused scaled-dot-product attention, xformers when installed and asked for.

Nothing here materialises the full attention matrix, so the decoder's fusion attention and the
UNet's spatial attention stay within memory at full size.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_backend = "sdpa"  # "sdpa" | "xformers"


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


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v for tensors shaped (batch, heads, tokens, head_dim); no mask, no dropout."""
    if _backend == "xformers" and q.is_cuda:
        import xformers.ops as xops

        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads·d) -> (B, heads, N, d)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads·d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
