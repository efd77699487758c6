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


# --------------------------------------------------------------------------------------------------
# One full-size generation


HEIGHT, WIDTH, FRAMES = 320, 512, 16
COMPONENT_NAMES = {
    "text": "cond_stage_model",
    "image": "embedder",
    "resampler": "image_proj_model",
    "vae": "first_stage_model",
    "unet": "model.diffusion_model",
}


def _component(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    module: Any = model
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def build_meta_model(dtype: torch.dtype) -> torch.nn.Module:
    """The default 512 model on the meta device (no memory), through `build_model` when it exists,
    else assembled from the component modules under the checkpoint's prefixes."""
    try:
        from .model import build_model
    except ImportError:
        build_model = None
    if build_model is not None:
        return build_model(None, device="meta", dtype=dtype)
    from .autoencoder import Autoencoder
    from .clip import ImageEmbedder, TextEncoder
    from .resampler import Resampler
    from .unet import UNet3D

    with torch.device("meta"):
        model = torch.nn.Module()
        model.model = torch.nn.Module()
        model.model.diffusion_model = UNet3D()
        model.first_stage_model = Autoencoder()
        model.cond_stage_model = TextEncoder()
        model.embedder = ImageEmbedder()
        model.image_proj_model = Resampler()
    return model.to(dtype)


def _largest_stream_unit(unet: torch.nn.Module, per: int) -> int:
    from .memory import _blocks

    return max(module_bytes(block, per) for block in _blocks(unet))


def trace_generation(mode: str = "balanced", dtype: str = "fp16", model: torch.nn.Module | None = None,
                     height: int = HEIGHT, width: int = WIDTH, frames: int = FRAMES) -> TraceResult:
    """Peak GPU bytes per stage of one generation (1 denoising step) in memory `mode`.

    Modes: high (all weights resident, cond and uncond batched), balanced (only the running
    component resident, bounded-memory decode), low (balanced, UNet streamed block by block), original (calibration:
    fp32 weights all resident with autocast's cached fp16 copies, fp16 activations, UNet attention
    materialised, cond and uncond as two calls, all 16 frames encoded; the decoder's attention is
    fused, as the original calls xformers there unconditionally).
    """
    from .autoencoder import concat_condition, decode_interpolation, encode_pair, encode_video

    if mode not in ("high", "balanced", "low", "original"):
        raise ValueError(f"unknown trace mode {mode!r}")
    act_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    per = act_dtype.itemsize
    model = model if model is not None else build_meta_model(act_dtype)
    parts = {name: _component(model, dotted) for name, dotted in COMPONENT_NAMES.items()}
    sizes = {name: module_bytes(module, per) for name, module in parts.items()}
    total = sum(sizes.values())
    autocast_cache: dict[str, int] = {}

    def original(part: str) -> int:
        # fp32 weights all resident, plus the fp16 copies autocast makes of every weight it has used:
        # its cast cache lives until the outermost autocast region (the whole generation) ends.
        autocast_cache[part] = sizes[part]
        return total * 4 // per + sum(autocast_cache.values())

    weight_bytes = {
        "high": lambda part: total,
        "original": original,
        "balanced": lambda part: sizes[part],
        "low": lambda part: (_largest_stream_unit(parts["unet"], per) if part == "unet" else sizes[part]),
    }[mode]
    lat_h, lat_w = height // 8, width // 8
    meta = TRACE_DEVICE

    with tracing() as (tracker, attn):
        # --- encode: text and image conditions, the two keys through the VAE
        with tracker.stage("encode"):
            tokens = torch.zeros(2, 77, dtype=torch.long, device=meta)  # the prompt and ""
            with tracker.stage("encode:text", weight_bytes("text")):
                text = parts["text"](tokens)
            keys = torch.empty(2, 3, height, width, dtype=act_dtype, device=meta)  # start frame, zero image
            with tracker.stage("encode:image", weight_bytes("image")):
                image_tokens = parts["image"](keys)
            with tracker.stage("encode:resampler", weight_bytes("resampler")):
                image_context = parts["resampler"](image_tokens)
            del image_tokens
            context = torch.cat([text, image_context], dim=1)  # cond and uncond rows
            del text, image_context
            noise = torch.empty(frames, 4, lat_h, lat_w, dtype=act_dtype, device=meta)
            with tracker.stage("encode:vae", weight_bytes("vae")):
                if mode == "original":
                    video = torch.empty(1, 3, frames, height, width, dtype=act_dtype, device=meta)
                    z, refs = encode_video(parts["vae"], video, noise)
                    z_start, z_end = z[:, :, 0], z[:, :, -1]
                    del video
                else:
                    start = torch.empty(1, 3, height, width, dtype=act_dtype, device=meta)
                    z_start, z_end, refs = encode_pair(parts["vae"], start, start.clone(), noise)
                    del start
                c_cat = concat_condition(z_start, z_end, frames)
            del noise, keys
        # --- one denoising step: two UNet evaluations (batched in the high mode)
        x = torch.empty(1, 4, frames, lat_h, lat_w, dtype=torch.float32, device=meta)
        with tracker.stage("unet step", weight_bytes("unet")):
            attn.materialise = mode == "original"
            unet = parts["unet"]
            timestep = torch.zeros(1, dtype=torch.long, device=meta)
            fs = torch.full((1,), 10, dtype=torch.long, device=meta)
            if mode == "high":
                inp = torch.cat([torch.cat([x, c_cat.float()], dim=1)] * 2)
                v = unet(inp, timestep.expand(2), context, fs.expand(2))
                v_cond, v_uncond = v.chunk(2)
            else:
                inp = torch.cat([x, c_cat.float()], dim=1)
                v_cond = unet(inp, timestep, context[:1], fs)
                v_uncond = unet(inp, timestep, context[1:], fs)
            del inp
            v = v_uncond + 7.5 * (v_cond - v_uncond)  # guidance and the DDIM update, in float32
            del v_cond, v_uncond
            x = x * 0.5 + v * 0.5
            del v
            attn.materialise = False
        del context, c_cat
        # --- decode: the 16- and 14-frame passes and the splice
        lean = mode in ("balanced", "low")  # the bounded-memory decode of ae_lean (same numbers)
        with tracker.stage("decode", weight_bytes("vae")):
            final, all16, middle14 = decode_interpolation(parts["vae"], x.to(act_dtype), refs, lean=lean)
            del all16, middle14
            pixels = ((final.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
            del final, pixels
    stages = {name: tracker.stages[name] for name in ("encode", "unet step", "decode")}
    detail = {name: value for name, value in tracker.stages.items() if name.startswith("encode:")}
    result = TraceResult(mode, dtype, tracker.peak, stages)
    result.notes.append("weights: " + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in sizes.items()))
    result.notes.append("encode detail: " + ", ".join(f"{k[7:]} {v / 2**30:.2f} GiB" for k, v in detail.items()))
    return result
