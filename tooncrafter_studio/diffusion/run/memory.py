"""GPU memory modes: how much of the model lives on the GPU, chosen from the free VRAM.

- high: every weight on the GPU in fp16/bf16 (fastest; about 5.3 GB of weights).
- balanced: each component (text encoder, image encoder, resampler, VAE, UNet) is brought to the
  GPU when it runs and sent back to the CPU when another one starts, so the encoders run first and
  leave; only the running component's weights occupy the GPU (the pipeline's `stage_hook`). The
  VAE decodes in bounded pieces (the autoencoder's `lean` decode, ae_lean.py: frame groups for
  per-frame layers, bands of rows for the temporal blocks, whose norm statistics are taken over
  the whole chunk first), and the UNet's conditional and unconditional passes run one after the
  other instead of batched.
- low: balanced, and the UNet's blocks are streamed one at a time from the CPU (sequential offload).

None changes the numbers: weights only move. On the CPU the model runs in bf16 where the CPU has
native bf16 dot products (AVX-512 BF16 or AMX, `cpu_bf16.py`), else in float32 (`resolve_dtype`).

The pure parts (mode choice, estimates, the out-of-memory retry) import no torch, so the engine
can plan and explain a run before torch is even loaded. The placement helpers import it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...core.errors import InputError, OutOfMemory

log = logging.getLogger(__name__)

GiB = 1024**3
MODES = ("high", "balanced", "low")  # most to least GPU memory
MODE_CHOICES = ("auto", *MODES)
DTYPES = ("fp16", "bf16", "fp32")
DTYPE_CHOICES = ("auto", *DTYPES)  # auto: fp16 on a GPU; on the CPU bf16 where native, else fp32

# Peak bytes on the GPU of one 512x320x16 generation per mode with 2-byte weights (fp16 and bf16
# alike): the peak of live device storage in the dry run of the engine's own CUDA path
# (cli/dryrun.py; `doctor --estimate-vram`, benchmarks/bench_memory.py). Update them
# when the model code changes; a test checks every mode against a fresh full-size dry run.
DRY_RUN_PEAK_BYTES_FP16: dict[str, int] = {
    "high": int(11.37 * GiB),
    "balanced": int(3.19 * GiB),
    "low": int(1.90 * GiB),
}
# The peak when a half-precision decode overflows and is done again in float32 (float32 copies of the
# VAE's weights and float32 activations; the dry run with `overflow_decode`). The pipeline does the
# redo piece by piece when it does not fit, so the mode choice plans for the generation itself; this
# figure says what the redo adds (`doctor --estimate-vram`).
DRY_RUN_FP32_REDECODE_PEAK_BYTES_FP16: dict[str, int] = {
    "high": int(13.44 * GiB),
    "balanced": int(4.05 * GiB),
    "low": int(4.05 * GiB),
}
# The denoise stage's share of those peaks (one UNet step with its conditions; the dry run's
# per-stage figures): what `doctor --selftest` compares with torch.cuda.max_memory_allocated.
DRY_RUN_DENOISE_BYTES_FP16: dict[str, int] = {
    "high": int(5.66 * GiB),
    "balanced": int(3.18 * GiB),
    "low": int(0.69 * GiB),
}
# What sketch guidance adds (an estimate, not yet in the dry run nor measured on a GPU): the encoder's fp16 weights
# (728,455,904 bytes), resident with the UNet while denoising, plus its 13 residuals for 16 frames
# at 320x512 (4,198,400 values per frame, 134 MB per batch row), held through the UNet pass; the
# encoder's own transient activations (the hint block at full resolution, ~0.2 GB) are smaller than
# the UNet's, so they do not raise the peak. High batches cond and uncond (two rows).
SKETCH_EXTRA_BYTES_FP16: dict[str, int] = {
    "high": 728_455_904 + 2 * 134_348_800,
    "balanced": 728_455_904 + 134_348_800,
    "low": 728_455_904 + 134_348_800,
}
# What the dry run cannot see: the CUDA context, allocator rounding and fragmentation, cuDNN workspaces.
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


def table_peak_bytes(mode: str, dtype: str = "fp16", sketch: bool = False) -> int:
    """The traced peak the mode choice uses for `mode` (no overheads): the dry-run table."""
    check_mode(mode, MODES)
    check_dtype(dtype)
    traced = DRY_RUN_PEAK_BYTES_FP16[mode] + (SKETCH_EXTRA_BYTES_FP16[mode] if sketch else 0)
    if dtype == "fp32":  # weights and activations both double
        traced *= 2
    return traced


def estimate_peak_bytes(mode: str, dtype: str = "fp16", sketch: bool = False) -> int:
    """Bytes of GPU memory one full-size generation needs in `mode`, overheads included
    (`sketch`: with the sketch encoder)."""
    return with_overhead(table_peak_bytes(mode, dtype, sketch))


def redecode_plan_bytes(mode: str, dtype: str = "fp16") -> int | None:
    """With overheads, what a run needs when its half-precision decode overflows and is redone in
    float32 (None in fp32: there is no redo)."""
    check_mode(mode, MODES)
    if check_dtype(dtype) == "fp32":
        return None
    return with_overhead(DRY_RUN_FP32_REDECODE_PEAK_BYTES_FP16[mode])


def with_overhead(traced_bytes: float) -> int:
    """A traced peak plus the allocator and CUDA-context allowance: what is compared with free VRAM."""
    return int(traced_bytes * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES


def format_gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.1f} GB"


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    needed_bytes: int
    free_bytes: int | None
    reason: str


def choose_mode(requested: str = "auto", free_bytes: int | None = None, dtype: str = "fp16",
                sketch: bool = False) -> ModeChoice:
    """Pick the memory mode for a run given the free VRAM (None: unknown, e.g. on the CPU).

    auto: the fastest mode whose estimate fits. An explicit mode that does not fit is refused
    with the mode that would fit named; nothing that fits at all is refused with the figures.
    """
    check_mode(requested)
    check_dtype(dtype)
    if free_bytes is None:
        mode = "high" if requested == "auto" else requested
        return ModeChoice(mode, estimate_peak_bytes(mode, dtype, sketch), None, "free memory unknown")
    fitting = [m for m in MODES if estimate_peak_bytes(m, dtype, sketch) <= free_bytes]
    if requested == "auto":
        if not fitting:
            low = estimate_peak_bytes(MODES[-1], dtype, sketch)
            raise OutOfMemory(
                f"Generation needs about {format_gib(low)} of GPU memory even in the low memory mode, "
                f"but only {format_gib(free_bytes)} is free; close other programs using the GPU."
            )
        mode = fitting[0]
        return ModeChoice(mode, estimate_peak_bytes(mode, dtype, sketch), free_bytes,
                          f"{format_gib(free_bytes)} free, {mode} needs about {format_gib(estimate_peak_bytes(mode, dtype, sketch))}")
    need = estimate_peak_bytes(requested, dtype, sketch)
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


# Allocation failures that do not say "out of memory": cuBLAS creating its handle or workspace,
# cuDNN allocating its workspace (an internal error there is, in practice, a failed allocation).
ALLOCATION_FAILURES = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                       "cudnn_status_internal_error", "cudnn_status_not_enough_workspace",
                       "hipblas_status_alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) allocation failure, whatever the torch version or library
    (cuBLAS, cuDNN) calls it."""
    if type(exc).__name__ in ("OutOfMemoryError", "OutOfMemory") and not isinstance(exc, OutOfMemory):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in ALLOCATION_FAILURES)


def run_with_oom_retry(attempt: Callable[[str], T], mode: str, dtype: str = "fp16",
                       free_bytes: Callable[[], int | None] | None = None,
                       on_retry: Callable[[str, str], None] | None = None) -> T:
    """Run `attempt(mode)`; on an out-of-memory error retry once in the next lower mode.

    `on_retry(old, new)` is called before the retry (to free caches, tell the user). When the
    lowest mode fails too, OutOfMemory names the mode and the memory it would need.
    """
    check_mode(mode, MODES)
    failed, error = "", ""
    for current in (mode, lower_mode(mode)):
        if current is None:
            break
        if failed:
            log.warning("Out of GPU memory in the %s mode (%s); retrying in the %s mode.", failed, error, current)
            if on_retry is not None:
                on_retry(failed, current)
        try:
            return attempt(current)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            # Keep only the text: the exception's traceback holds the failed run's GPU tensors.
            failed, error = current, f"{type(exc).__name__}: {exc}"
    log.warning("Out of GPU memory in the %s mode: %s", failed, error)
    raise _oom_error(failed, dtype, free_bytes)


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


ACCELERATORS = ("cuda", "mps")  # devices whose weights run in half precision and move per mode


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_available(device: Any) -> bool:
    """Whether torch can run on `device` here ("cpu" always)."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return cuda_available()
    if kind == "mps":
        return mps_available()
    return kind == "cpu"


def free_vram_bytes(device: Any = "cuda") -> tuple[int, int] | None:
    """(free, total) bytes of a CUDA device, or of the memory Metal recommends for an MPS device
    (Apple silicon shares it with the system), or None when there is none or it is unknown."""
    import torch

    dev = torch.device(device)
    if dev.type == "mps":
        mps = getattr(torch, "mps", None)
        if not mps_available() or not hasattr(mps, "recommended_max_memory"):
            return None
        total = int(mps.recommended_max_memory())
        return max(0, total - int(mps.driver_allocated_memory())), total
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(dev)
    return int(free), int(total)


def resolve_dtype(device: str, requested: str | None = None, cpu_native_bf16: bool | None = None) -> str:
    """The precision a run on `device` uses for the `requested` one (None or "auto": the default).

    CUDA and MPS: fp16 by default, or what was asked. CPU: bf16 where the CPU runs it natively
    (`cpu_bf16.detect`, or `cpu_native_bf16` when given), else float32; "fp16" there (a GPU
    precision, the old default of saved settings) means that default too. bf16 asked for on a CPU
    without native bf16 is honoured, with a warning: it is emulated and slower than float32."""
    kind = str(device).split(":")[0]
    if requested not in (None, "auto"):
        check_dtype(requested)
    if kind in ACCELERATORS:
        return "fp16" if requested in (None, "auto") else str(requested)
    if requested == "fp32":
        return "fp32"
    from . import cpu_bf16

    native = cpu_bf16.detect().native if cpu_native_bf16 is None else cpu_native_bf16
    if requested == "bf16":
        if not native:
            log.warning("bf16 on this CPU is emulated (no AVX-512 BF16 or AMX): slower than float32.")
        return "bf16"
    return cpu_bf16.cpu_default_dtype(native)


def weight_dtype(device: Any, requested: str | None = None) -> Any:
    """The torch dtype of `resolve_dtype(device, requested)`."""
    import torch

    name = resolve_dtype(torch.device(device).type, requested)
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def release_cached_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if mps_available():
        torch.mps.empty_cache()


# --------------------------------------------------------------------------------------------------
# Placement: where the weights live in each mode

# Which components each pipeline stage runs (the pipeline's `stage_hook` names, see pipeline.py).
STAGE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "text": ("cond_stage_model",),
    "image": ("embedder", "image_proj_model"),
    "vae_encode": ("first_stage_model",),
    "denoise": ("model.diffusion_model", "sketch_encoder"),  # the encoder only when the pipeline has one
    "decode": ("first_stage_model",),
}
COMPONENTS = ("cond_stage_model", "embedder", "image_proj_model", "first_stage_model", "model.diffusion_model",
              "sketch_encoder")
# UNet children small enough to stay on the GPU in the low mode; the first of them also tells the
# pipeline (which puts inputs where a module's first parameter is) which device to use.
UNET_RESIDENT = ("time_embed", "fps_embedding", "out")


class _Offloaded:
    """Weights of some modules that live on the CPU and visit `device` while they are needed.

    The CPU tensors are kept and put back on unload, so sending weights back costs nothing (they
    never change at inference). Entries are swapped in the owners' parameter/buffer tables, which
    works for any pair of devices.
    """

    def __init__(self, modules: list[Any], device: Any, pin: bool = False) -> None:
        import torch

        self.device = torch.device(device)
        self.on_device = False
        self._entries: list[tuple[Any, str, bool, Any]] = []
        for module in modules:
            for owner in module.modules():
                for name, param in owner._parameters.items():
                    if param is not None:
                        self._entries.append((owner, name, True, param))
                for name, buf in owner._buffers.items():
                    if buf is not None:
                        self._entries.append((owner, name, False, buf))
        if pin:
            self._pin()

    def _pin(self) -> None:
        """Keep the CPU copies in page-locked memory: a unit that visits the device for every UNet
        call (the low mode's streamed blocks, ~2.8 GB per call) then copies asynchronously at full
        bus speed instead of through a pageable bounce buffer."""
        import torch

        pinned = []
        for owner, name, is_param, cpu in self._entries:
            locked = pin_tensor(cpu)
            if locked is None:
                return  # nothing changed: pinning is an optimisation
            pinned.append((owner, name, is_param, torch.nn.Parameter(locked, requires_grad=False)
                           if is_param else locked))
        self._entries = pinned
        self._put_back()

    def load(self) -> None:
        if self.on_device:
            return
        import torch

        try:
            for owner, name, is_param, cpu in self._entries:
                moved = cpu.detach().to(self.device, non_blocking=True)
                if is_param:
                    owner._parameters[name] = torch.nn.Parameter(moved, requires_grad=False)
                else:
                    owner._buffers[name] = moved
        except BaseException:
            # Out of memory (or cancel) half-way: the copies made so far must not stay on the device
            # with nobody to unload them.
            self._put_back()
            raise
        self.on_device = True

    def _put_back(self) -> None:
        for owner, name, is_param, cpu in self._entries:
            (owner._parameters if is_param else owner._buffers)[name] = cpu

    def unload(self) -> None:
        if not self.on_device:
            return
        self._put_back()
        self.on_device = False


_pin_failure_logged = False


def pin_tensor(tensor: Any) -> Any | None:
    """A page-locked copy of a CPU tensor, or None where there is no pinned memory (no CUDA, a fake
    tensor); said once in the log."""
    global _pin_failure_logged
    try:
        return tensor.detach().pin_memory()
    except Exception as exc:
        if not _pin_failure_logged:
            _pin_failure_logged = True
            log.info("Streamed weights stay in pageable memory (%s: %s).", type(exc).__name__, exc)
        return None


def enable_tf32(device: Any, dtype: Any) -> bool:
    """float32 on CUDA (the NaN advice: --dtype fp32) runs its matmuls and convolutions on the tensor
    cores in TF32, as diffusers and most inference stacks do; without it fp32 is several times slower.
    True when it was switched on."""
    import torch

    if torch.device(device).type != "cuda" or dtype != torch.float32:
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


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
    """A memory mode applied to a model. Give `stage_hook` to the pipeline: before each stage it
    brings that stage's components to the device and sends the others back (balanced, low).
    `remove()` sends everything back to the CPU and takes the hooks off."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.resident: _Offloaded | None = None  # the high mode: everything, for the whole run
        self.handles: list[Any] = []
        self.components: dict[str, _Offloaded] = {}
        self.streamed: list[_Offloaded] = []

    @property
    def lean_decode(self) -> bool:
        return self.mode != "high"

    @property
    def batch_cfg(self) -> bool:
        return self.mode == "high"

    def stage_hook(self, stage: str) -> None:
        wanted = STAGE_COMPONENTS.get(stage)
        if wanted is None or not self.components:
            return
        for name, unit in self.components.items():
            if name not in wanted:
                unit.unload()
        for name in wanted:
            if name in self.components:
                self.components[name].load()

    def on_device(self) -> list[str]:
        return [name for name, unit in self.components.items() if unit.on_device]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for unit in [*self.components.values(), *self.streamed]:
            unit.unload()
        if self.resident is not None:
            self.resident.unload()


def apply_memory_mode(model: Any, mode: str, device: Any, dtype: Any, sketch_encoder: Any = None) -> Placement:
    """Cast the model's networks to `dtype` and place them for `mode` on `device`.

    high (and any mode on the CPU): everything on the device. balanced: everything on the CPU; the
    returned placement's `stage_hook` moves each stage's components in and the others out. low:
    balanced, and the UNet's blocks are streamed: each comes to the device for its forward and goes
    back after it (forward hooks), only its small embedding and output layers stay.
    The schedule buffers stay float32 (the sampler's arithmetic) and on the CPU.
    """
    import torch

    check_mode(mode, MODES)
    dev = torch.device(device)
    enable_tf32(dev, dtype)
    parts = {name: _submodule(model, name) for name in COMPONENTS}
    if sketch_encoder is not None:  # a pipeline's component beside the model, placed with the UNet
        parts["sketch_encoder"] = sketch_encoder
    parts = {name: module for name, module in parts.items() if module is not None}
    for module in parts.values() or [model]:
        module.to(dtype=dtype)
    placement = Placement(mode)
    model.to("cpu")
    if dev.type == "cpu":
        return placement
    if mode == "high":  # all on the device; the CPU copies stay, so unloading costs no copy back
        placement.resident = _Offloaded(list(parts.values()) or [model], dev)
        placement.resident.load()
        return placement
    for name, module in parts.items():
        if mode == "low" and name == "model.diffusion_model":
            resident = [getattr(module, n) for n in UNET_RESIDENT if getattr(module, n, None) is not None]
            for block in _blocks(module):
                if any(block is r for r in resident):
                    continue
                unit = _Offloaded([block], dev, pin=dev.type == "cuda")
                placement.streamed.append(unit)
                placement.handles.append(block.register_forward_pre_hook(lambda *_a, u=unit: u.load()))
                # always_call: a block whose forward failed (out of memory) goes back too
                placement.handles.append(block.register_forward_hook(lambda *_a, u=unit: u.unload(),
                                                                     always_call=True))
            placement.components[name] = _Offloaded(resident, dev)
        else:
            placement.components[name] = _Offloaded([module], dev)
    # The schedule buffers stay on the CPU: the sampler's tables are built there (ddim_tables) and
    # only the per-step scalars it needs travel with x.
    return placement


def torch_environment() -> dict[str, Any]:
    """What torch sees: versions, CUDA build, devices with total/free memory, attention backends."""
    import torch

    from ..nets.attention import available_backends

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
