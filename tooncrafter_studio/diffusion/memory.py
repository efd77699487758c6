"""GPU memory modes: how much of the model lives on the GPU, chosen from the free VRAM.

- high: every weight on the GPU in fp16/bf16 (fastest; about 5.3 GB of weights).
- balanced: each component (text encoder, image encoder, resampler, VAE, UNet) is brought to the
  GPU when it runs and sent back to the CPU when another one starts, so the encoders run first and
  leave; only the running component's weights occupy the GPU. The VAE decodes in bounded pieces
  (`bound_decoder`: frame groups for per-frame layers, bands of rows for the temporal blocks, whose
  norm statistics are taken over the whole chunk first).
- low: balanced, and the UNet's blocks are streamed one at a time from the CPU (sequential offload).

None changes the numbers: weights only move. On the CPU the model runs in float32.

The pure parts (mode choice, estimates, the out-of-memory retry) import no torch, so the engine
can plan and explain a run before torch is even loaded. The placement helpers import it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core.errors import InputError, OutOfMemory

log = logging.getLogger(__name__)

GiB = 1024**3
MODES = ("high", "balanced", "low")  # most to least GPU memory
MODE_CHOICES = ("auto", *MODES)
TRACE_MODES = (*MODES, "original")  # "original": calibration against the official code
DTYPES = ("fp16", "bf16", "fp32")

# Peak bytes of one 512x320x16 generation per mode with 2-byte weights, from the memory trace
# (`tooncrafter-studio doctor --estimate-vram`, benchmarks/bench_memory.py). Update them when the
# model code changes; a test checks they stay close to a fresh trace's figures.
TRACED_PEAK_BYTES_FP16: dict[str, int] = {
    "high": int(10.61 * GiB),
    "balanced": int(3.84 * GiB),
    "low": int(3.22 * GiB),
}
# What the trace cannot see: the CUDA context, allocator rounding and fragmentation, cuDNN workspaces.
OVERHEAD_FRACTION = 0.10
OVERHEAD_BYTES = int(0.6 * GiB)


def check_mode(mode: str, allowed: tuple[str, ...] = MODE_CHOICES) -> str:
    if mode not in allowed:
        raise InputError(f"Unknown memory mode '{mode}': use one of {', '.join(allowed)}.")
    return mode


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InputError(f"Unknown precision '{dtype}': use one of {', '.join(DTYPES)}.")
    return dtype


def lower_mode(mode: str) -> str | None:
    """The next mode that uses less memory, or None from the lowest."""
    index = MODES.index(mode)
    return MODES[index + 1] if index + 1 < len(MODES) else None


def estimate_peak_bytes(mode: str, dtype: str = "fp16") -> int:
    """Bytes of GPU memory one full-size generation needs in `mode`, overheads included."""
    check_mode(mode, MODES)
    check_dtype(dtype)
    traced = TRACED_PEAK_BYTES_FP16[mode]
    if dtype == "fp32":  # weights and activations both double
        traced *= 2
    return int(traced * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES


def format_gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.1f} GB"


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    needed_bytes: int
    free_bytes: int | None
    reason: str


def choose_mode(requested: str = "auto", free_bytes: int | None = None, dtype: str = "fp16") -> ModeChoice:
    """Pick the memory mode for a run given the free VRAM (None: unknown, e.g. on the CPU).

    auto: the fastest mode whose estimate fits. An explicit mode that does not fit is refused
    with the mode that would fit named; nothing that fits at all is refused with the figures.
    """
    check_mode(requested)
    check_dtype(dtype)
    if free_bytes is None:
        mode = "high" if requested == "auto" else requested
        return ModeChoice(mode, estimate_peak_bytes(mode, dtype), None, "free memory unknown")
    fitting = [m for m in MODES if estimate_peak_bytes(m, dtype) <= free_bytes]
    if requested == "auto":
        if not fitting:
            low = estimate_peak_bytes(MODES[-1], dtype)
            raise OutOfMemory(
                f"Generation needs about {format_gib(low)} of GPU memory even in the low memory mode, "
                f"but only {format_gib(free_bytes)} is free; close other programs using the GPU."
            )
        mode = fitting[0]
        return ModeChoice(mode, estimate_peak_bytes(mode, dtype), free_bytes,
                          f"{format_gib(free_bytes)} free, {mode} needs about {format_gib(estimate_peak_bytes(mode, dtype))}")
    need = estimate_peak_bytes(requested, dtype)
    if requested not in fitting:
        hint = f"; the {fitting[0]} mode would fit" if fitting else "; no mode fits"
        raise OutOfMemory(
            f"The {requested} memory mode needs about {format_gib(need)} of GPU memory but only "
            f"{format_gib(free_bytes)} is free{hint}."
        )
    return ModeChoice(requested, need, free_bytes, f"{format_gib(free_bytes)} free, {requested} needs about {format_gib(need)}")


# --------------------------------------------------------------------------------------------------
# Out-of-memory handling

T = TypeVar("T")


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) allocation failure, whatever the torch version calls it."""
    if type(exc).__name__ in ("OutOfMemoryError", "OutOfMemory") and not isinstance(exc, OutOfMemory):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_oom_retry(attempt: Callable[[str], T], mode: str, dtype: str = "fp16",
                       free_bytes: Callable[[], int | None] | None = None,
                       on_retry: Callable[[str, str], None] | None = None) -> T:
    """Run `attempt(mode)`; on an out-of-memory error retry once in the next lower mode.

    `on_retry(old, new)` is called before the retry (to free caches, tell the user). When the
    lowest mode fails too, OutOfMemory names the mode and the memory it would need.
    """
    check_mode(mode, MODES)
    try:
        return attempt(mode)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        first_error = exc
    lower = lower_mode(mode)
    if lower is None:
        raise _oom_error(mode, dtype, free_bytes) from first_error
    log.warning("Out of GPU memory in the %s mode; retrying in the %s mode.", mode, lower)
    if on_retry is not None:
        on_retry(mode, lower)
    try:
        return attempt(lower)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise _oom_error(lower, dtype, free_bytes) from exc


def _oom_error(mode: str, dtype: str, free_bytes: Callable[[], int | None] | None) -> OutOfMemory:
    need = estimate_peak_bytes(mode, dtype)
    free = free_bytes() if free_bytes is not None else None
    free_text = f", {format_gib(free)} is free now" if free is not None else ""
    lower = lower_mode(mode)
    advice = (f"try the {lower} memory mode" if lower else "close other programs using the GPU or use a larger GPU")
    return OutOfMemory(
        f"Ran out of GPU memory in the {mode} memory mode, which needs about {format_gib(need)}{free_text}; {advice}."
    )


# --------------------------------------------------------------------------------------------------
# Devices and dtypes (torch imported lazily)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def free_vram_bytes(device: Any = "cuda") -> tuple[int, int] | None:
    """(free, total) bytes of a CUDA device, or None when there is none."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(torch.device(device))
    return int(free), int(total)


def weight_dtype(device: Any, requested: str | None = None) -> Any:
    """fp16 (or the requested bf16) on CUDA, float32 on the CPU (half is slow or missing there)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return torch.float32
    name = check_dtype(requested or "fp16")
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def release_cached_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------
# Placement: where the weights live in each mode

# Checkpoint prefixes of the components (issue 4: submodules named like the checkpoint).
COMPONENTS = ("cond_stage_model", "embedder", "image_proj_model", "first_stage_model", "model.diffusion_model")


class _Offloaded:
    """Weights of one module that live on the CPU and visit `device` while it runs.

    The CPU tensors are kept and put back on unload, so sending weights back costs nothing (they
    never change at inference). Entries are swapped in the owners' parameter/buffer tables, which
    works for any pair of devices.
    """

    def __init__(self, module: Any, device: Any) -> None:
        import torch

        self.module = module
        self.device = torch.device(device)
        self.on_device = False
        self._entries: list[tuple[Any, str, bool, Any]] = []
        for owner in module.modules():
            for name, param in owner._parameters.items():
                if param is not None:
                    self._entries.append((owner, name, True, param))
            for name, buf in owner._buffers.items():
                if buf is not None:
                    self._entries.append((owner, name, False, buf))

    def load(self) -> None:
        if self.on_device:
            return
        import torch

        for owner, name, is_param, cpu in self._entries:
            moved = cpu.detach().to(self.device, non_blocking=True)
            if is_param:
                owner._parameters[name] = torch.nn.Parameter(moved, requires_grad=False)
            else:
                owner._buffers[name] = moved
        self.on_device = True

    def unload(self) -> None:
        if not self.on_device:
            return
        for owner, name, is_param, cpu in self._entries:
            (owner._parameters if is_param else owner._buffers)[name] = cpu
        self.on_device = False


def _submodule(model: Any, dotted: str) -> Any | None:
    module = model
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _blocks(unet: Any) -> list[Any]:
    """The UNet's streaming units: each element of its block lists, and its other children."""
    import torch

    units = []
    for child in unet.children():
        if isinstance(child, torch.nn.ModuleList):
            units.extend(child)
        else:
            units.append(child)
    return units


class Placement:
    """The hooks that implement a memory mode on a model; `remove()` undoes them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.handles: list[Any] = []
        self.components: list[_Offloaded] = []
        self.streamed: list[_Offloaded] = []
        self.bounded: list[Any] = []

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        unbound_decoder(self.bounded)
        self.bounded.clear()
        for unit in self.components + self.streamed:
            unit.unload()

    def resident_names(self) -> list[str]:
        return [type(u.module).__name__ for u in self.components if u.on_device]


def apply_memory_mode(model: Any, mode: str, device: Any, dtype: Any) -> Placement:
    """Cast the model to `dtype` and place it for `mode` on `device` (CPU: everything stays there).

    balanced/low install forward pre-hooks on every submodule of each component: whichever part
    of a component runs first brings the whole component to the device and sends the other
    components back, so only the running stage's weights occupy the GPU. low streams the UNet's
    blocks: each is brought in before its forward and sent back after it.
    """
    import torch

    check_mode(mode, MODES)
    dev = torch.device(device)
    parts = [m for m in (_submodule(model, name) for name in COMPONENTS) if m is not None]
    for part in parts or [model]:  # schedule buffers outside the components stay float32
        part.to(dtype=dtype)
    placement = Placement(mode)
    if mode == "high" or dev.type == "cpu":
        model.to(dev)
        return placement
    vae = _submodule(model, "first_stage_model")
    if vae is not None:
        placement.bounded = bound_decoder(vae, recompute=mode == "low")
    model.to("cpu")
    unet = _submodule(model, "model.diffusion_model")
    for name in COMPONENTS:
        module = _submodule(model, name)
        if module is None:
            continue
        if mode == "low" and module is unet:
            for block in _blocks(unet):
                unit = _Offloaded(block, dev)
                placement.streamed.append(unit)
                placement.handles.append(block.register_forward_pre_hook(lambda *_a, u=unit: u.load()))
                placement.handles.append(block.register_forward_hook(lambda *_a, u=unit: u.unload()))
            unit = None
        else:
            unit = _Offloaded(module, dev)
            placement.components.append(unit)

        def activate(*_args: Any, unit: _Offloaded | None = unit) -> None:
            for other in placement.components:
                if other is not unit:
                    other.unload()
            if unit is not None:
                unit.load()

        for sub in module.modules():
            placement.handles.append(sub.register_forward_pre_hook(activate))
    # Tensors owned by the top-level model itself (schedule buffers) are small: keep them on the device.
    for name, buf in list(model._buffers.items()):
        if buf is not None:
            model._buffers[name] = buf.to(dev)
    return placement


def torch_environment() -> dict[str, Any]:
    """What torch sees: versions, CUDA build, devices with total/free memory, attention backends."""
    import torch

    from .attention import available_backends

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "attention_backends": available_backends(),
        "devices": [],
    }
    if info["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            info["devices"].append({"index": index, "name": props.name, "total_bytes": int(total),
                                    "free_bytes": int(free), "capability": f"{props.major}.{props.minor}",
                                    "bf16": bool(torch.cuda.is_bf16_supported())})
    return info


# --------------------------------------------------------------------------------------------------
# Bounded decoding: the same numbers in pieces
#
# At full size the decoder's widest tensors are 16 frames x 128-256 channels x 320 x 512 (0.7-1.3 GB
# in fp16 each) and a plain video res-block keeps five or six of them alive at once. The pieces:
# - the spatial ResnetBlock and the Upsample act on each frame alone: run them a few frames at a
#   time, writing into one output tensor;
# - the temporal block's GroupNorms span the whole chunk (trap 4), but its Conv3d kernels are
#   (3, 1, 1): no spatial extent. So the norm statistics are computed first (a reduction pass) and
#   the rest runs in horizontal bands of rows. The 16-frame chunk semantics are untouched.

PIECE_ELEMENTS = 1 << 25  # elements per piece: 64 MB in fp16 (128 MB as float32 temporaries)


class _GroupStats:
    """GroupNorm statistics over (B, C, T, H, W) per (batch, group), fed band by band.

    Sums are taken around a shift (the first band's mean) and accumulated in float64, so one pass
    gives the variance without cancellation; it agrees with torch's group_norm to float rounding.
    """

    def __init__(self, num_groups: int, eps: float) -> None:
        self.groups = num_groups
        self.eps = eps
        self.shift: Any = None
        self.total: Any = None
        self.squares: Any = None
        self.count = 0

    def add(self, band: Any) -> None:
        import torch

        b, c, t, h, w = band.shape
        grouped = band.float().reshape(b, self.groups, -1)
        if self.shift is None:
            self.shift = grouped.mean(dim=2, keepdim=True)
            self.total = torch.zeros(b, self.groups, dtype=torch.float64, device=band.device)
            self.squares = torch.zeros_like(self.total)
        d = grouped - self.shift
        self.total += d.sum(dim=2, dtype=torch.float64)
        self.squares += (d * d).sum(dim=2, dtype=torch.float64)
        self.count += grouped.shape[2]

    def result(self) -> tuple[Any, Any]:
        import torch

        mean_d = self.total / self.count
        var = (self.squares / self.count - mean_d * mean_d).clamp_min(0)
        mean = (mean_d + self.shift.squeeze(2).double()).float()
        return mean, torch.rsqrt(var + self.eps).float()


def _apply_group_norm(x: Any, norm: Any, mean: Any, rstd: Any) -> Any:
    """GroupNorm of a band with precomputed statistics, in float32, cast back to the band's dtype."""
    b, c, t, h, w = x.shape
    g = norm.num_groups
    y = (x.float().reshape(b, g, c // g, t, h, w) - mean.view(b, g, 1, 1, 1, 1)) * rstd.view(b, g, 1, 1, 1, 1)
    y = y.view(b, c, t, h, w)
    if norm.affine:
        y = y * norm.weight.float().view(1, c, 1, 1, 1) + norm.bias.float().view(1, c, 1, 1, 1)
    return y.to(x.dtype)


def _bounded_video_res_block(block: Any, x: Any, frames: int, recompute: bool = False) -> Any:
    """VideoResBlock.forward in pieces. The result is built in place in the frame layout the next
    layer wants (no final re-layout copy). With `recompute`, the temporal block's first half is
    computed twice instead of being kept (one full-size tensor less, one more Conv3d pass)."""
    import torch
    import torch.nn.functional as F

    spatial_forward = type(block).__mro__[1].forward  # the 2-D ResnetBlock's forward
    bt, cin, h, w = x.shape
    b = bt // frames
    cout = block.conv1.out_channels
    step = max(1, PIECE_ELEMENTS // (max(cin, cout) * h * w))
    out = x.new_empty(bt, cout, h, w)
    for i in range(0, bt, step):
        out[i:i + step] = spatial_forward(block, x[i:i + step])
    video = out.view(b, frames, cout, h, w).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W) view of `out`
    stack = block.time_stack
    norm1, conv1 = stack.in_layers[0], stack.in_layers[2]
    norm2, conv2 = stack.out_layers[0], stack.out_layers[-1]
    band = max(1, PIECE_ELEMENTS // (b * cout * frames * w))
    bands = [(r, min(h, r + band)) for r in range(0, h, band)]
    alpha = torch.sigmoid(block.mix_factor).to(out.dtype)

    stats = _GroupStats(norm1.num_groups, norm1.eps)
    for r0, r1 in bands:
        stats.add(video[..., r0:r1, :])
    mean1, rstd1 = stats.result()

    def first_half(r0: int, r1: int) -> Any:
        return conv1(F.silu(_apply_group_norm(video[..., r0:r1, :].contiguous(), norm1, mean1, rstd1)))

    hidden = None if recompute else torch.empty((b, cout, frames, h, w), dtype=out.dtype, device=out.device)
    stats = _GroupStats(norm2.num_groups, norm2.eps)
    for r0, r1 in bands:
        piece = first_half(r0, r1)
        stats.add(piece)
        if hidden is not None:
            hidden[..., r0:r1, :] = piece
        del piece
    mean2, rstd2 = stats.result()
    for r0, r1 in bands:
        piece = first_half(r0, r1) if hidden is None else hidden[..., r0:r1, :]
        spatial = video[..., r0:r1, :]
        temporal = spatial + conv2(F.silu(_apply_group_norm(piece, norm2, mean2, rstd2)))
        video[..., r0:r1, :] = alpha * temporal + (1.0 - alpha) * spatial
        del temporal, spatial, piece
    return out


def _bounded_upsample(module: Any, x: Any) -> Any:
    n, c, h, w = x.shape
    step = max(1, PIECE_ELEMENTS // (c * h * w * 4))
    out = x.new_empty(n, module.conv.out_channels, 2 * h, 2 * w)
    original = type(module).forward
    for i in range(0, n, step):
        out[i:i + step] = original(module, x[i:i + step])
    return out


def bound_decoder(autoencoder: Any, recompute: bool = False) -> list[Any]:
    """Make the decoder's video res-blocks and up-samplers run in bounded pieces; returns the patched
    modules (pass them to `unbound_decoder`). Same results up to float rounding of the norm sums.
    `recompute` (the low mode) trades one more Conv3d pass per block for one full-size tensor less."""
    import functools
    import types

    decoder = getattr(autoencoder, "decoder", autoencoder)
    patched = []
    for module in decoder.modules():
        if hasattr(module, "time_stack") and hasattr(module, "mix_factor") and hasattr(module, "conv1"):
            module.forward = types.MethodType(functools.partial(_bounded_video_res_block, recompute=recompute),
                                              module)
            patched.append(module)
        elif type(module).__name__ == "Upsample" and hasattr(module, "conv"):
            module.forward = types.MethodType(_bounded_upsample, module)
            patched.append(module)
    return patched


def unbound_decoder(patched: list[Any]) -> None:
    for module in patched:
        if "forward" in module.__dict__:
            del module.forward
