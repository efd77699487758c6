"""A dry run of the production generation path on an accelerator we do not have.

The engine, the pipeline, the memory modes, the stage hooks, the lean decode, the streamed UNet
blocks and the out-of-memory retry all run as they would for a user, on the same objects, but every
tensor on the compute device is a `FakeTensor` (shape, dtype and device, no data and no storage)
from PyTorch's `FakeTensorMode`, and `torch.cuda` (or `torch.backends.mps`) is patched to describe a
chosen card. Small CPU values (keys, noise, the schedule) stay real, so the sampler's tables and
the seeded noise are computed exactly; the model's weights are fake CPU tensors.

While it runs, an `OpRecorder` sees the output of every operator: it keeps the live bytes of each
storage on the compute device (freed through a weak reference when the last tensor using it dies,
the lifetime the caching allocator sees) and their peak, and it flags what a device cannot do:
float64 on the compute device (Apple's MPS has none), and on MPS a half-precision bicubic or
antialiased resize and a 5-D GroupNorm. Attention is modelled as the fused kernels the GPU runs
(flash / memory-efficient SDPA: the output and a float32 log-sum-exp per row); the fake kernel
would otherwise count the math fallback's score matrices.

Where a value would have to be read back (`.item()`, `bool(tensor)`: the finite checks), a fake
tensor answers "finite" / zero: a dry run checks placement, devices, dtypes and memory, not numbers.

    with dry_run_session("cuda", CARDS["8gb"]) as session:
        model = fake_model(dtype=torch.float16)
        ...  # run the engine with device="cuda"
    session.recorder.peak_bytes, session.recorder.violations
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

log = logging.getLogger(__name__)

GiB = 1024**3
aten = torch.ops.aten
_DEVICE_QUERY = torch.ops.prim.device.default


@dataclass(frozen=True)
class SimulatedCard:
    """What `torch.cuda` reports during a dry run."""

    name: str
    total_bytes: int
    capability: tuple[int, int] = (8, 6)
    bf16: bool = True
    free_fraction: float = 0.95  # the desktop and other programs hold the rest

    @property
    def free_bytes(self) -> int:
        return int(self.total_bytes * self.free_fraction)


CARDS = {
    "8gb": SimulatedCard("NVIDIA GeForce RTX 3070 (simulated)", 8 * GiB),
    "12gb": SimulatedCard("NVIDIA GeForce RTX 3060 (simulated)", 12 * GiB),
    "24gb": SimulatedCard("NVIDIA GeForce RTX 4090 (simulated)", 24 * GiB, capability=(8, 9)),
    "80gb": SimulatedCard("NVIDIA H100 80GB HBM3 (simulated)", 80 * GiB, capability=(9, 0)),
    "mac16gb": SimulatedCard("Apple M2 16 GB (simulated; Metal recommends about 2/3 of it)", 10 * GiB + GiB // 2),
}


# --------------------------------------------------------------------------------------------------
# Fake compute-device tensors next to real CPU values


def _is_fake(value: Any) -> bool:
    return isinstance(value, FakeTensor)


def _flat(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> list[Any]:
    """The leaves of an operator's arguments (aten schemas nest at most one list deep); cheaper
    than pytree, which matters at a few hundred thousand operators a run."""
    out: list[Any] = []
    for value in (*args, *(kwargs or {}).values()):
        if isinstance(value, list | tuple):
            out.extend(value)
        else:
            out.append(value)
    return out


class DryRunTensorMode(FakeTensorMode):
    """FakeTensorMode in which operators on real CPU tensors only, producing CPU tensors, run for real.

    Everything that touches a fake tensor, or creates a tensor on another device, is faked. The
    weights are fake CPU tensors (see `fake_model`), so nothing large is ever allocated.
    """

    def __init__(self) -> None:
        super().__init__(allow_non_fake_inputs=True)

    @property
    def avoid_device_init(self) -> bool:  # there is no device: never start it for a constant
        return True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func is _DEVICE_QUERY and _is_fake(args[0]):  # asked from C++ all the time: answer at once
            return args[0].fake_device
        kwargs = kwargs or {}
        flat = _flat(args, kwargs)
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        devices = [a for a in flat if isinstance(a, torch.device)]
        real_cpu = (not any(_is_fake(t) or t.device.type != "cpu" for t in tensors)
                    and all(d.type == "cpu" for d in devices))
        if real_cpu:
            return func(*args, **kwargs)
        if func is aten._local_scalar_dense.default:  # a value read back: "finite", zero
            (tensor,) = args
            return True if tensor.dtype == torch.bool else 0
        return super().__torch_dispatch__(func, types, args, kwargs)


def fake_numpy(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> np.ndarray:
    """`FakeTensor.numpy()`: zeros of the right shape and dtype (the pixels are not the point)."""
    if tensor.device.type != "cpu":
        raise TypeError(f"can't convert {tensor.device.type} device type tensor to numpy")
    return np.zeros(tuple(tensor.shape), dtype=_NUMPY_DTYPES[tensor.dtype])


_NUMPY_DTYPES = {
    torch.uint8: np.uint8, torch.bool: np.bool_, torch.int64: np.int64, torch.int32: np.int32,
    torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
}


# --------------------------------------------------------------------------------------------------
# What every operator does on the compute device


@dataclass
class Violation:
    op: str
    device: str
    dtype: str
    what: str

    def __str__(self) -> str:
        return f"{self.what}: {self.op} ({self.dtype} on {self.device})"


_RESIZE_OPS = ("upsample_bicubic2d", "_upsample_bicubic2d_aa", "_upsample_bilinear2d_aa", "upsample_bilinear2d")
_HALF = (torch.float16, torch.bfloat16)
# Operators whose inputs and weights must share a dtype (the fake kernels would accept a mix).
_WEIGHTED_OPS = {"convolution", "_convolution", "cudnn_convolution", "addmm", "mm", "bmm", "baddbmm", "linear",
                 "matmul", "conv2d", "conv3d"}


class OpRecorder(TorchDispatchMode):
    """Sees the inputs and outputs of every operator: live bytes and peak on `device`, the dtypes
    and devices used, and the violations of what the device supports.

    `stage` names the part of the run the live bytes are attributed to (`stage_peaks`).
    """

    def __init__(self, device: str | torch.device) -> None:
        super().__init__()
        self.device = torch.device(device)
        self.kind = self.device.type
        self.live = 0
        self.peak = 0
        self.stage = "start"
        self.stage_peaks: dict[str, int] = {}
        self.stage_ops: dict[str, int] = {}
        self.violations: list[Violation] = []
        self.ops = 0
        self.dtypes_on_device: dict[str, int] = {}
        self._storages: dict[int, weakref.ref] = {}

    @property
    def peak_bytes(self) -> int:
        return self.peak

    def set_stage(self, name: str) -> None:
        self.stage = name
        self.stage_peaks[name] = max(self.stage_peaks.get(name, 0), self.live)

    def _on_device(self, tensor: torch.Tensor) -> bool:
        return tensor.device.type == self.kind

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = id(storage)
        known = self._storages.get(key)
        if known is not None and known() is storage:
            return
        nbytes = storage.nbytes()

        def freed(_ref: weakref.ref, key: int = key, nbytes: int = nbytes) -> None:
            self.live -= nbytes
            self._storages.pop(key, None)

        self._storages[key] = weakref.ref(storage, freed)
        self.live += nbytes
        if self.live > self.peak:
            self.peak = self.live
        if self.live > self.stage_peaks.get(self.stage, 0):
            self.stage_peaks[self.stage] = self.live

    def _flag(self, func: Any, tensor: torch.Tensor, what: str) -> None:
        self.violations.append(Violation(str(func), str(tensor.device), str(tensor.dtype), what))

    def _check_inputs(self, func: Any, tensors: list[torch.Tensor]) -> None:
        name = getattr(func, "__name__", str(func)).split(".")[0]
        devices = {t.device for t in tensors if t.dim() > 0}
        if len(devices) > 1:
            self.violations.append(Violation(str(func), ", ".join(sorted(map(str, devices))), "",
                                             "operands on different devices"))
        if name in _WEIGHTED_OPS:
            floats = {t.dtype for t in tensors if t.is_floating_point()}
            if len(floats) > 1:  # a real GPU kernel refuses a half input with float weights
                self.violations.append(Violation(str(func), str(tensors[0].device),
                                                 ", ".join(sorted(str(d).removeprefix("torch.") for d in floats)),
                                                 "operands of different dtypes"))
        on_device = [t for t in tensors if self._on_device(t)]
        if self.kind != "mps" or not on_device:
            return
        if name in _RESIZE_OPS and on_device[0].dtype in _HALF:
            self._flag(func, on_device[0], "half-precision resize on MPS")
        if name == "native_group_norm" and on_device[0].dim() == 5:
            self._flag(func, on_device[0], "5-D GroupNorm on MPS")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func is _DEVICE_QUERY:
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        inputs = [a for a in _flat(args, kwargs) if isinstance(a, torch.Tensor)]
        self._check_inputs(func, inputs)
        out = func(*args, **kwargs)
        self.ops += 1
        self.stage_ops[self.stage] = self.stage_ops.get(self.stage, 0) + 1
        for item in (out if isinstance(out, list | tuple) else (out,)):
            if isinstance(item, torch.Tensor) and self._on_device(item):
                name = str(item.dtype).removeprefix("torch.")
                self.dtypes_on_device[name] = self.dtypes_on_device.get(name, 0) + 1
                if item.dtype == torch.float64:
                    self._flag(func, item, "float64 on the compute device")
                self._track(item)
        return out


class DeviceFunctions(TorchFunctionMode):
    """Two functions as the simulated device runs them.

    `scaled_dot_product_attention` as the fused GPU kernels allocate: the output and a float32
    log-sum-exp per query row (the fake kernel would take the math path and count the scores).
    `Tensor.to(device)` as the copy operator it dispatches to: the Python binding would first
    start the (missing) device's driver.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, _k, v = args[:3]
            lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
            out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
            del lse
            return out
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and _is_mps_fake(args[0]):
            return _mps_indexing(func, *args)
        if func is torch.Tensor.contiguous and _is_mps_fake(args[0]):  # (same device guard)
            memory_format = kwargs.get("memory_format", args[1] if len(args) > 1 else torch.contiguous_format)
            if args[0].is_contiguous(memory_format=memory_format):
                return args[0]
            return torch.ops.aten.clone.default(args[0], memory_format=memory_format)
        if func is torch.Tensor.to:
            tensor = args[0]
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args[1:], **kwargs)
            if device is not None and not _same_device(torch.device(device), tensor.device):
                options: dict[str, Any] = {"device": torch.device(device), "dtype": dtype or tensor.dtype,
                                           "non_blocking": non_blocking}
                if memory_format is not None:
                    options["memory_format"] = memory_format
                return torch.ops.aten._to_copy.default(tensor, **options)
        return func(*args, **kwargs)


def _is_mps_fake(value: Any) -> bool:
    return _is_fake(value) and value.device.type == "mps"


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.device.type != "cpu":
        return torch.ops.aten._to_copy.default(value, device=torch.device("meta"))
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(v) for v in value)
    return value


def _mps_indexing(func: Any, tensor: torch.Tensor, index: Any, value: Any = None) -> Any:
    """Python indexing of a fake MPS tensor. The C++ indexing code takes a device guard, which a
    build without Metal refuses, so the indexing is done on a meta twin with the same strides and
    storage: a view becomes the same view of the MPS tensor, anything else a new MPS tensor."""
    storage = torch.empty(tensor.untyped_storage().nbytes() // tensor.element_size(), dtype=tensor.dtype,
                          device="meta")
    twin = storage.as_strided(tensor.shape, tensor.stride(), tensor.storage_offset())
    if func is torch.Tensor.__setitem__:  # no data to write: check the shapes, as the real write would
        twin[_to_meta(index)] = _to_meta(value)
        return None
    result = twin[_to_meta(index)]
    if result.untyped_storage().nbytes() == storage.untyped_storage().nbytes() and result._is_view():
        return tensor.as_strided(result.shape, result.stride(), result.storage_offset())
    return torch.empty_strided(result.shape, result.stride(), dtype=result.dtype, device=tensor.device)


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


# --------------------------------------------------------------------------------------------------
# A card that is not there


class _Properties:
    def __init__(self, card: SimulatedCard) -> None:
        self.name = card.name
        self.total_memory = card.total_bytes
        self.major, self.minor = card.capability
        self.multi_processor_count = 64


def _always_true() -> Any:
    def available() -> bool:
        return True

    available.__wrapped__ = available  # type: ignore[attr-defined]  # (torch._dynamo reads it)
    return available


@contextlib.contextmanager
def simulated_device(kind: str = "cuda", card: SimulatedCard | None = None) -> Iterator[SimulatedCard]:
    """`torch.cuda` (kind "cuda") or `torch.backends.mps` (kind "mps") report a device that works."""
    card = card or CARDS["24gb"]
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context
        cuda = torch.cuda
        if kind == "cuda":
            patch(mock.patch.object(cuda, "is_available", lambda: True))
            patch(mock.patch.object(cuda, "_lazy_init", lambda: None))  # no driver to start
            patch(mock.patch.object(cuda, "device_count", lambda: 1))
            patch(mock.patch.object(cuda, "get_device_properties", lambda *_a, **_k: _Properties(card)))
            patch(mock.patch.object(cuda, "get_device_name", lambda *_a, **_k: card.name))
            patch(mock.patch.object(cuda, "mem_get_info", lambda *_a, **_k: (card.free_bytes, card.total_bytes)))
            patch(mock.patch.object(cuda, "is_bf16_supported", lambda *_a, **_k: card.bf16))
            patch(mock.patch.object(cuda, "empty_cache", lambda: None))
            patch(mock.patch.object(cuda, "synchronize", lambda *_a, **_k: None))
        elif kind == "mps":
            patch(mock.patch.object(cuda, "is_available", lambda: False))
            available = _always_true()
            patch(mock.patch.object(torch.backends.mps, "is_available", available))
            patch(mock.patch.object(torch.backends.mps, "is_built", available))
            patch(mock.patch.object(torch.mps, "empty_cache", lambda: None))
            patch(mock.patch.object(torch.mps, "synchronize", lambda: None))
            patch(mock.patch.object(torch.mps, "recommended_max_memory", lambda: card.total_bytes, create=True))
            patch(mock.patch.object(torch.mps, "driver_allocated_memory",
                                    lambda: card.total_bytes - card.free_bytes, create=True))
        else:
            raise ValueError(f"no simulated device of kind {kind!r}")
        yield card


def simulated_out_of_memory(live_bytes: int, card: SimulatedCard) -> BaseException:
    """The error CUDA's caching allocator raises when an allocation does not fit."""
    return torch.cuda.OutOfMemoryError(
        f"CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        f"{card.total_bytes / GiB:.2f} GiB of which 0 bytes is free. Of the allocated memory "
        f"{live_bytes / GiB:.2f} GiB is allocated by PyTorch (simulated by the dry run)")


@dataclass
class DryRunSession:
    device: str
    card: SimulatedCard
    recorder: OpRecorder
    mode: DryRunTensorMode
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def dry_run_session(device: str = "cuda", card: SimulatedCard | None = None) -> Iterator[DryRunSession]:
    """Enter the dry run: a simulated `device`, fake tensors on it, the recorder and fused attention."""
    kind = torch.device(device).type
    with simulated_device(kind, card) as used:
        recorder = OpRecorder(kind)
        fake = _fake_tensor_mode()
        session = DryRunSession(device, used, recorder, fake)
        with mock.patch.object(FakeTensor, "numpy", fake_numpy, create=True), torch.inference_mode(False):
            with fake, recorder, DeviceFunctions():
                yield session


_shared_mode: DryRunTensorMode | None = None
_models: dict[Any, Any] = {}


def _fake_tensor_mode() -> DryRunTensorMode:
    """One fake mode per process: fake tensors of different modes cannot meet, and the fake models
    are kept between dry runs (as the engine keeps a loaded model between generations)."""
    global _shared_mode
    if _shared_mode is None:
        _shared_mode = DryRunTensorMode()
    return _shared_mode


def fake_model(config: Any = None) -> Any:
    """The ToonCrafter model of `config` (None: the 512 model) with fake CPU float32 weights, as
    `load_model` leaves it before placement, and the real float32 schedule buffers. Built once per
    configuration and kept; use it inside `dry_run_session`."""
    from ..nets.config import ToonCrafterConfig
    from ..nets.model import build_model
    from ..nets.schedule import schedule_buffers

    config = config or ToonCrafterConfig.default()
    if config in _models:
        return _models[config]
    model = build_model(config, device="meta")
    with _fake_tensor_mode():
        for module in model.modules():
            for name, param in module._parameters.items():
                if param is not None:
                    module._parameters[name] = torch.nn.Parameter(
                        torch.empty(param.shape, dtype=param.dtype, device="cpu"), requires_grad=False)
            for name, buf in module._buffers.items():
                if buf is not None and buf.device.type == "meta":
                    module._buffers[name] = torch.empty(buf.shape, dtype=buf.dtype, device="cpu")
    for name, value in schedule_buffers(config.schedule).items():
        model._buffers[name] = value
    _models[config] = model
    return model
