"""The deterministic weight-fill rule of the reference vectors (vectors/README.md §1).

Tests and benchmarks fill a model with these values so that our numbers can be compared with
those the original code produced under the same rule. Never used for real generation.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import torch
from torch import nn


def fill_tensor(key: str, shape: Iterable[int]) -> torch.Tensor:
    """The float32 value the rule gives the checkpoint entry `key` (a full checkpoint key)."""
    shape = tuple(int(s) for s in shape)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=generator, dtype=torch.float32)
    name = key.rsplit(".", 1)[-1]
    if name.endswith("weight") and len(shape) >= 2:
        return r / math.sqrt(math.prod(shape[1:]))
    if name.endswith("weight"):
        return 1 + 0.1 * r
    if name.endswith("bias"):
        return 0.02 * r
    return 0.1 * r


@torch.no_grad()
def fill_module(module: nn.Module, prefix: str = "") -> int:
    """Fill every dotted state-dict entry of `module` in place; `prefix` turns its keys into
    full checkpoint keys (e.g. "model.diffusion_model."). Top-level schedule buffers (no dot in
    the full key) keep their computed values. Returns the number of entries filled."""
    filled = 0
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = prefix + name
        if "." not in key:
            continue
        value = fill_tensor(key, tensor.shape)
        tensor.data.copy_(value.to(dtype=tensor.dtype, device=tensor.device))
        filled += 1
    return filled
