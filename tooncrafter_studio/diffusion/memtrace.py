"""A device-independent trace of GPU memory: one generation run on tensors without data.

Everything runs on PyTorch's `meta` device (shapes and dtypes, no storage), inside a dispatch
mode that sees every tensor the operators create. It counts the bytes of each live storage and
notices, through a weak reference, the moment the storage is freed — the same lifetime the CUDA
caching allocator sees (less its rounding and fragmentation, which `memory.py` adds as a margin).
Model weights are created outside the trace and are counted as "resident" bytes, per stage,
according to where a memory mode keeps them.

Attention is modelled as the fused kernels we run on CUDA (SDPA flash / memory-efficient): the
output plus a small per-row log-sum-exp. The calibration mode "original" instead materialises
the UNet's score matrices as the original code does without xformers, and keeps fp32 weights
resident as the original does under fp16 autocast.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

log = logging.getLogger(__name__)

TRACE_DEVICE = torch.device("meta")


# --------------------------------------------------------------------------------------------------
# The storage tracker


class StorageTracker(TorchDispatchMode):
    """Live bytes of the tensors created on `device` while the mode is active, and their peak.

    `resident` bytes (weights kept on the device by the memory mode) are added to the live count;
    `stage(name)` records the peak reached inside it under that name.
    """

    def __init__(self, device: torch.device = TRACE_DEVICE) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.live = 0
        self.peak = 0
        self.resident = 0
        self.stages: dict[str, int] = {}
        self._stage_peaks: list[list[Any]] = []  # stack of [name, peak]
        self._storages: dict[int, weakref.ref] = {}

    # -- accounting
    def _bump(self) -> None:
        total = self.live + self.resident
        if total > self.peak:
            self.peak = total
        for entry in self._stage_peaks:
            if total > entry[1]:
                entry[1] = total

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.device != self.device:
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._storages and self._storages[key]() is storage:
            return
        nbytes = storage.nbytes()

        def freed(_ref: weakref.ref, key: int = key, nbytes: int = nbytes) -> None:
            self.live -= nbytes
            self._storages.pop(key, None)

        self._storages[key] = weakref.ref(storage, freed)
        self.live += nbytes
        self._bump()

    def track_existing(self, *tensors: torch.Tensor) -> None:
        """Count tensors made before the trace (inputs) as live until they are freed."""
        for tensor in tensors:
            self._track(tensor)

    def set_resident(self, nbytes: int) -> None:
        self.resident = int(nbytes)
        self._bump()

    @contextlib.contextmanager
    def stage(self, name: str, resident: int | None = None) -> Iterator[None]:
        previous = self.resident
        if resident is not None:
            self.resident = int(resident)
        entry = [name, self.live + self.resident]
        self._stage_peaks.append(entry)
        self._bump()
        try:
            yield
        finally:
            self._stage_peaks.remove(entry)
            self.stages[name] = max(self.stages.get(name, 0), int(entry[1]))
            self.resident = previous

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor):
                self._track(item)
        return out


# --------------------------------------------------------------------------------------------------
# Attention as the kernels run it


class AttentionModel(TorchFunctionMode):
    """Replaces `scaled_dot_product_attention` by its memory footprint.

    Fused (the default): the output and a float32 log-sum-exp per query row, as flash /
    memory-efficient kernels allocate. Materialised (`materialise=True`): the scores and their
    softmax, as plain `softmax(q·kᵀ)·v` code keeps them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.materialise = False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            if self.materialise:
                scores = torch.matmul(q, k.transpose(-2, -1))
                probs = torch.softmax(scores, dim=-1)
                del scores
                return torch.matmul(probs, v)
            lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
            out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
            del lse
            return out
        return func(*args, **kwargs)


# --------------------------------------------------------------------------------------------------
# Running a generation's stages


@dataclass
class TraceResult:
    mode: str
    dtype: str
    peak_bytes: int
    stages: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "dtype": self.dtype, "peak_bytes": self.peak_bytes, "stages": dict(self.stages)}


def module_bytes(module: torch.nn.Module, bytes_per_element: int | None = None) -> int:
    """Bytes of a module's parameters and buffers (at `bytes_per_element` for floating ones if given)."""
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        per = bytes_per_element if (bytes_per_element and tensor.is_floating_point()) else tensor.element_size()
        total += tensor.numel() * per
    return total


@contextlib.contextmanager
def tracing(materialise_attention: bool = False) -> Iterator[tuple[StorageTracker, AttentionModel]]:
    """Enter the trace: a StorageTracker on the meta device and the attention model, no autograd."""
    tracker = StorageTracker()
    attn = AttentionModel()
    attn.materialise = materialise_attention
    with torch.inference_mode(), attn, tracker:
        yield tracker, attn


def trace_call(fn: Callable[[], Any], resident: int = 0, materialise_attention: bool = False) -> TraceResult:
    """Peak bytes of one call (a small module's forward, in tests) with `resident` weight bytes."""
    with tracing(materialise_attention) as (tracker, _):
        with tracker.stage("call", resident):
            out = fn()
            del out
    return TraceResult("call", "", tracker.peak, dict(tracker.stages))
