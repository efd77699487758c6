"""Half precision: what stays float32, and how far fp16 / bf16 results may drift from float32.

On CUDA the weights are fp16 (default) or bf16; on the CPU the model runs in float32. What the
original keeps in float32 (under its fp16 autocast), we keep in float32 too:

- GroupNorm statistics and affine: `unet_blocks.GroupNorm32` (every UNet norm, the temporal
  GroupNorms across frames included) and the VAE's norms (`ae_blocks.vae_norm`, the decoder's
  temporal res-blocks, the lean decode's band statistics in `ae_lean`, accumulated in float64).
- The sinusoidal timestep and frame-rate embeddings (`unet.timestep_embedding`): computed in
  float32 and cast to the weights' dtype only for the embedding MLP, as the original does.
- Softmax: every SDPA kernel accumulates it in float32 (see attention.py); the Resampler's
  attention runs on float32 copies as the original's does.
- LayerNorm: PyTorch's fp16/bf16 kernels accumulate the statistics in float32 (their output is
  rounded to half, which the original's autocast does before the next Linear anyway).
- The DDIM update and the schedule buffers (ddim.py), the noise draws, and the decoded video
  (`pipeline`: `.float()` before frames are made).

Tolerances (max |a − b| / max |b| against float32 of the same inputs, fill-rule weights):
measured on the CPU with the reduced model at the reference vectors' sizes (bf16: UNet pass 3.0e-2,
VAE two-pass decode 1.7e-2, 4-step e2e latent 9.3e-2 and video 1.2e-1; fp16: UNet pass 4.1e-3, about
7x smaller), then set at about 2.5x the worst figure seen, so a real regression (a
norm computed in half, an embedding rounded before its sine, a float32 op silently skipped)
fails while rounding differences between kernels (CUDA's tensor cores accumulate in another order
than the CPU) do not. The unit roundoff is 4.9e-4 for fp16 and 3.9e-3 for bf16; errors grow over
the ~100 layers of a UNet pass and over the sampler's steps, which the tolerances reflect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# check -> dtype -> max relative error accepted
TOLERANCES: dict[str, dict[str, float]] = {
    "unet": {"fp32": 1e-5, "fp16": 1.5e-2, "bf16": 8e-2},
    "vae": {"fp32": 1e-5, "fp16": 1.5e-2, "bf16": 8e-2},
    "e2e_latent": {"fp32": 1e-3, "fp16": 5e-2, "bf16": 0.25},
    "e2e_video": {"fp32": 1e-3, "fp16": 5e-2, "bf16": 0.25},
    "block": {"fp32": 1e-5, "fp16": 1e-2, "bf16": 5e-2},
}
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def tolerance(check: str, dtype: str) -> float:
    return TOLERANCES[check][dtype]


def relative_error(value: Any, reference: Any) -> float:
    """max |value − reference| / max |reference|, in float64 (tensors or arrays)."""
    a = _array(value)
    b = _array(reference)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    scale = float(np.abs(b).max()) or 1.0
    diff = np.abs(a - b)
    if not np.isfinite(diff).all():
        return float("inf")
    return float(diff.max() / scale)


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, TORCH_DTYPES[name])
