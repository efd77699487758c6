"""The ToonCrafter engine: keys of any size in, in-betweens at the requested times out.

The engine fits the keys into the model frame, runs as many model passes as the times need
(`timing.execute_passes`), colour-matches the frames to the keys and maps them back to the keys'
resolution, aspect, channels and depth. The generation itself is `diffusion.run.pipeline`'s; this
module imports torch only through `diffusion`, lazily, when a run starts.

A generation backend can be injected (constructor `backend=` or `params["model"]` set to an
object instead of a path): anything callable as
`backend(start, end, *, prompt, steps, cfg_scale, eta, frame_stride, seed, callback, cancel)`
returning 16 uint8 frames (16, H, W, 3) at the model size, or an object with such `.frames` (our
`ToonCrafterPipeline` itself qualifies); an optional `model_size` (height, width) tells the engine
the frame to fit the keys into (default 320 x 512). Tests use a tiny random model this way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import EngineUnavailable, InputError, ModelError, OutOfMemory, StudioError
from ...core.paths import find_model
from ...core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from ...media.imageio import to_bit_depth
from ..base import Engine, EngineCapabilities, InterpolationRequest, InterpolationResult, ProbeResult
from ..sketch import SketchOptions, split_sketch_params
from . import colour, sketches, timing
from .fit import FIT_MODES, MODEL_HEIGHT, MODEL_WIDTH, plan_fit

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
MEMORY_CHOICES = ("auto", "high", "balanced", "low")
DEVICES = ("cuda", "mps", "cpu")  # mps: Apple silicon (Metal)
DTYPES = ("fp16", "bf16", "fp32")
ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")  # diffusion.nets.attention.SDPA_KERNELS
MAX_STEPS = 60  # the 'uniform_trailing' spacing breaks beyond 60 (spec §0.15); the pipeline re-checks


def cpu_warning(dtype: str | None = None) -> str:
    """What a CPU run costs, in the precision it will use (bf16 on CPUs with AVX-512 BF16 or AMX)."""
    from .presets import CPU_FORWARD_CPU_SECONDS, cpu_run_dtype, format_duration

    name = cpu_run_dtype(dtype)
    step = CPU_FORWARD_CPU_SECONDS[name]  # two forwards per step over 2 cores
    return (f"Running ToonCrafter on the CPU in {name}: a full-size generation takes "
            f"{'about an hour or more' if name == 'bf16' else 'hours'} (about {format_duration(step)} per "
            "denoising step on 2 cores; `doctor --selftest` measures this machine).")

Backend = Callable[..., np.ndarray]
BackendFactory = Callable[["Settings", str], Backend]


@dataclass(frozen=True)
class Settings:
    """The engine's parameters, validated (names as in request.params and on the command line)."""

    model: Any = None  # a path, None (search), or an injected backend / model object
    prompt: str = ""
    steps: int = 50
    cfg: float = 7.5
    eta: float = 1.0
    frame_stride: int = 10
    seed: int | None = None
    fit: str = "letterbox"
    colour_match: bool = True
    memory: str = "auto"
    device: str = "cuda"
    dtype: str = "fp16"
    trim_keys: bool = True  # drop near-copies of the anchors (no pause at keys)
    compile: bool = False  # torch.compile the UNet (diffusion/run/compile.py; falls back with one log line)
    attention: str = "auto"  # SDPA kernel (auto: PyTorch's choice)

    @property
    def model_is_object(self) -> bool:
        return self.model is not None and not isinstance(self.model, str | os.PathLike)


def _number(params: dict[str, Any], name: str, kind: type, lo: float, hi: float, default: Any) -> Any:
    value = params.get(name)
    if value is None:
        return default
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise InputError(f"ToonCrafter option {name} must be a {kind.__name__}, not {value!r}.") from None
    if not (lo <= number <= hi):
        raise InputError(f"ToonCrafter option {name} must be between {lo:g} and {hi:g} (got {number:g}).")
    return number


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name)
    if value is None:
        return default
    if value not in choices:
        raise InputError(f"ToonCrafter option {name} must be one of {', '.join(choices)} (got {value!r}).")
    return str(value)


def parse_settings(params: dict[str, Any] | None, base: Settings | None = None) -> Settings:
    params = dict(params or {})
    base = base or Settings()
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"Unknown ToonCrafter option(s): {', '.join(unknown)}.")
    colour_match = params.get("colour_match", base.colour_match)
    trim = params.get("trim_keys", base.trim_keys)
    return Settings(
        model=params.get("model", base.model),
        prompt=str(params.get("prompt") if params.get("prompt") is not None else base.prompt),
        steps=_number(params, "steps", int, 1, MAX_STEPS, base.steps),
        cfg=_number(params, "cfg", float, 1.0, 30.0, base.cfg),
        eta=_number(params, "eta", float, 0.0, 1.0, base.eta),
        frame_stride=_number(params, "frame_stride", int, 1, 60, base.frame_stride),
        seed=_number(params, "seed", int, 0, 2**63 - 1, base.seed),
        fit=_choice(params, "fit", FIT_MODES, base.fit),
        colour_match=bool(colour_match),
        memory=_choice(params, "memory", MEMORY_CHOICES, base.memory),
        device=_choice(params, "device", DEVICES, base.device),
        dtype=_choice(params, "dtype", DTYPES, base.dtype),
        trim_keys=bool(trim),
        compile=bool(params.get("compile", base.compile)),
        attention=_choice(params, "attention", ATTENTION_KERNELS, base.attention),
    )


OPTION_NAMES = tuple(Settings.__dataclass_fields__)


@dataclass(frozen=True)
class BackendKey:
    """What a placed backend depends on: a new key means a new backend (the old one is released)."""

    model: str  # the path setting, or "object:<id>" for an injected model
    device: str
    dtype: str
    mode: str = ""
    compile: bool = False  # a compiled UNet or another attention kernel is another backend (same model)
    attention: str = "auto"

    @classmethod
    def of(cls, settings: Settings, mode: str = "") -> BackendKey:
        model = f"object:{id(settings.model)}" if settings.model_is_object else str(settings.model)
        return cls(model, settings.device, settings.dtype, mode, settings.compile, settings.attention)

    def same_model(self, other: BackendKey) -> bool:
        return (self.model, self.device, self.dtype) == (other.model, other.device, other.dtype)


# --------------------------------------------------------------------------------------------------
# Key and frame conversions


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    """The model's input: 8-bit RGB; alpha is composited over white paper."""
    rgb = image[..., :3]
    if image.dtype == np.uint16:
        rgb = (rgb.astype(np.uint32) * 255 + 32767) // 65535
    rgb = rgb.astype(np.float32)
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / np.iinfo(image.dtype).max
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _like_key(frame8: np.ndarray, key: np.ndarray, alpha_from: np.ndarray) -> np.ndarray:
    """A generated 8-bit RGB frame in the key's depth, with the nearer key's alpha when it has one."""
    out = to_bit_depth(frame8, 16 if key.dtype == np.uint16 else 8)
    if key.shape[2] == 4:
        out = np.dstack([out, alpha_from[..., 3]])
    return np.ascontiguousarray(out.astype(key.dtype))


# --------------------------------------------------------------------------------------------------
# Identity of a model file (for provenance; cheap even for 10 GB)


def model_fingerprint(path: Path) -> dict[str, Any]:
    """Name, size and a content id of a weight file: the checkpoint module's fingerprint (its key,
    shape and dtype table; seconds for 10 GB) or, without torch, a hash of its first and last MB."""
    stat = path.stat()
    ident: dict[str, Any] = {"file": str(path), "name": path.name, "size_bytes": stat.st_size}
    if importlib.util.find_spec("torch") is not None:
        try:
            from ...diffusion.weights.checkpoint import identify

            info = identify(path)
            ident.update(fingerprint=info.fingerprint, architecture=info.architecture, format=info.format)
            return ident
        except Exception:  # an unreadable file still gets an identity; the check says what is wrong
            log.debug("Could not identify %s", path, exc_info=True)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        if stat.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read(1 << 20))
    digest.update(str(stat.st_size).encode())
    ident["fingerprint"] = "head-tail:" + digest.hexdigest()[:16]
    return ident


# --------------------------------------------------------------------------------------------------
# The default backend: our diffusion package (imported only here, only when a run starts)


def _missing_packages() -> list[str]:
    names = {"torch": "torch", "open_clip": "open_clip_torch", "safetensors": "safetensors"}
    return [pip for mod, pip in names.items() if importlib.util.find_spec(mod) is None]


def _check_model_file(path: Path) -> None:
    """The strict key/shape check of diffusion/weights/checkpoint.py (no tensor is read); ModelError if bad."""
    from ...diffusion.weights.checkpoint import ExpectedKeys, WeightFile

    WeightFile(path).check(ExpectedKeys.for_config())


class PipelineBackend:
    """Our ToonCrafterPipeline on a model placed for a memory mode; `close()` gives the GPU back."""

    def __init__(self, model: Any, mode: str, device: str, dtype_name: str, compile_unet: bool = False,
                 attention: str = "auto") -> None:
        from ...diffusion.nets.attention import set_sdpa_kernel
        from ...diffusion.run import memory
        from ...diffusion.run.pipeline import ToonCrafterPipeline

        dtype = memory.weight_dtype(device, dtype_name)
        self.mode = mode
        self.unet = model.unet
        set_sdpa_kernel(attention)
        self.placement = memory.apply_memory_mode(model, mode, device, dtype)
        if compile_unet:
            from ...diffusion.run.compile import compile_unet as compile_in_place

            compile_in_place(self.unet, device, mode)
        self.pipeline = ToonCrafterPipeline(model, batch_cfg=self.placement.batch_cfg,
                                            lean_decode=self.placement.lean_decode,
                                            stage_hook=self.placement.stage_hook)

    @property
    def model_size(self) -> tuple[int, int]:
        return self.pipeline.model_size

    def __call__(self, start: np.ndarray, end: np.ndarray, **kwargs: Any) -> Any:
        return self.pipeline(start, end, **kwargs)

    def close(self) -> None:
        from ...diffusion.run.compile import uncompile

        uncompile(self.unet)
        self.placement.remove()
        self.pipeline.clear_cache()


def load_model_file(path: Path, settings: Settings, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> Any:
    """Our model with the file's weights, on the CPU in the run's precision (placed per mode later)."""
    from ...diffusion.run import memory
    from ...diffusion.weights.checkpoint import load_model

    return load_model(path, device="cpu", dtype=memory.weight_dtype(settings.device, settings.dtype),
                      progress=progress, cancel=cancel)


# --------------------------------------------------------------------------------------------------


class ToonCrafterEngine(Engine):
    id = "tooncrafter"
    label = "ToonCrafter (generative, GPU)"
    capabilities = EngineCapabilities(needs_gpu=True, supports_prompt=True, previews=False,
                                      max_inbetweens_per_pass=timing.MAX_PER_PASS, deterministic=True,
                                      seed_variants=True)
    options = OPTION_NAMES
    accepts_sketches = True  # params["sketches"] (engines/sketch.py); other engines ignore them

    def __init__(self, backend: Backend | None = None, backend_factory: BackendFactory | None = None,
                 **defaults: Any) -> None:
        self._defaults = parse_settings(defaults)
        self._settings = self._defaults
        self._injected = backend
        self._factory = backend_factory or self._pipeline_backend
        self._model: Any = None
        self._model_key: tuple[Any, ...] | None = None
        self._backend: Backend | None = None
        self._backend_key: BackendKey | None = None
        self._probe_cache: dict[tuple[Any, ...], str | None] = {}
        self._identity_cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    # -- configuration and probing ------------------------------------------------------------------
    def configure(self, params: dict[str, Any]) -> None:
        """The run's options over the constructor's defaults (earlier configure calls are forgotten,
        so a setting the user cleared does not linger); validated here, once."""
        self._settings = parse_settings(params, self._defaults)

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"engine": self.id, "version": ENGINE_VERSION}
        if self._injected is not None or self._settings.model_is_object:
            ident["model"] = {"name": type(self._injected or self._settings.model).__name__, "injected": True}
        else:
            path, _ = find_model(self._settings.model)
            if path is not None:
                stat = path.stat()
                key = (str(path), stat.st_size, stat.st_mtime_ns)
                if key not in self._identity_cache:
                    self._identity_cache[key] = model_fingerprint(path)
                ident["model"] = self._identity_cache[key]
        return ident

    def probe(self) -> ProbeResult:
        try:
            return self._probe()
        except Exception as exc:  # never raises: say why
            reason = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            return ProbeResult(False, reason)

    def _probe(self) -> ProbeResult:
        s = self._settings
        notes: list[str] = []
        if self._injected is None:
            missing = _missing_packages()
            if missing:
                verb = "is" if len(missing) == 1 else "are"
                return ProbeResult(False, f"The ToonCrafter engine needs {', '.join(missing)}, which {verb} "
                                          "not installed: press 'Install the ToonCrafter engine' (Generate ▸ ToonCrafter Engine…), run "
                                          "`tooncrafter-studio engine install`, or install the 'tooncrafter' "
                                          "extra (pip install 'tooncrafter-studio[tooncrafter]').")
        device_note = self._probe_device(s)
        if device_note is not None and not device_note[0]:
            return ProbeResult(False, device_note[1])
        if device_note is not None:
            notes.append(device_note[1])
        if self._injected is None and not s.model_is_object:
            path, looked = find_model(s.model)
            if path is None:
                return ProbeResult(False, "No ToonCrafter model was found (nothing is downloaded on its own: "
                                          "Generate ▸ ToonCrafter Engine… ▸ Download model…). Looked in: "
                                          + "; ".join(looked) + ". Put model.ckpt in one of these places or choose the model file.")
            problem = self._checked(path)
            if problem:
                return ProbeResult(False, problem)
            notes.insert(0, f"model {path}")
        return ProbeResult(True, "; ".join(notes))

    def _probe_device(self, s: Settings) -> tuple[bool, str] | None:
        if s.device == "cpu":
            return True, cpu_warning(s.dtype)
        from ...diffusion.run import memory

        if not memory.device_available(s.device):
            if s.device == "mps":
                return False, ("Apple's Metal (MPS) device is not available here (PyTorch sees none: it needs Apple "
                               "silicon and macOS 12.3 or later); set the device to CPU to run on the processor anyway.")
            return False, ("No CUDA GPU is available here (PyTorch sees none). ToonCrafter needs an NVIDIA GPU or "
                           "Apple silicon (device MPS); set the device to CPU to run on the processor anyway "
                           "(a full-size run takes hours).")
        name = "MPS" if s.device == "mps" else "CUDA"
        info = memory.free_vram_bytes(s.device)
        if info is None:
            return True, name
        free, total = info
        try:
            choice = memory.choose_mode(s.memory, free, s.dtype)
        except OutOfMemory as exc:
            return False, str(exc)
        return True, f"{name}, {memory.format_gib(free)} free of {memory.format_gib(total)}, {choice.mode} memory mode"

    def _checked(self, path: Path) -> str | None:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._probe_cache:
            try:
                _check_model_file(path)
                self._probe_cache[key] = None
            except StudioError as exc:
                self._probe_cache[key] = str(exc)
            except ImportError as exc:
                self._probe_cache[key] = f"The model check is not available: {exc}."
        return self._probe_cache[key]

    # -- loading ------------------------------------------------------------------------------------
    def _get_backend(self, settings: Settings, mode: str) -> Backend:
        if self._injected is not None:
            return self._injected
        key = BackendKey.of(settings, mode)
        if self._backend is None or self._backend_key != key:
            self._release_backend()
            self._backend = self._factory(settings, mode)
            self._backend_key = key
        return self._backend

    def _pipeline_backend(self, settings: Settings, mode: str) -> Backend:
        """The default backend: the model (an injected one, or the file found, loaded once and kept
        on the CPU between modes) placed for `mode`, in our pipeline."""
        model = settings.model
        if model is not None and hasattr(model, "generate") and callable(model):
            return model  # an injected pipeline
        if not settings.model_is_object:
            path, looked = find_model(settings.model)
            if path is None:
                raise ModelError("No ToonCrafter model was found (nothing is downloaded on its own: "
                                          "Generate ▸ ToonCrafter Engine… ▸ Download model…). Looked in: "
                                 + "; ".join(looked) + ".")
            model = self._load_file(path, settings)
        return PipelineBackend(model, mode, settings.device, settings.dtype, settings.compile, settings.attention)

    def _load_file(self, path: Path, settings: Settings, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> Any:
        from ...diffusion.run import memory

        # the precision that will load (CPU: bf16 where native), so "fp16" and "bf16" there share one copy
        key = (str(path), path.stat().st_mtime_ns, settings.device, memory.resolve_dtype(settings.device, settings.dtype))
        if self._model_key != key:
            self._model = None
            self._model = load_model_file(path, settings, progress, cancel)
            self._model_key = key
        return self._model

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Read the weights now (with progress and cancel) so that the first generation starts at once."""
        s = self._settings
        if self._injected is not None or s.model_is_object:
            return
        path, looked = find_model(s.model)
        if path is None:
            raise ModelError("No ToonCrafter model was found (nothing is downloaded on its own: "
                                          "Generate ▸ ToonCrafter Engine… ▸ Download model…). Looked in: "
                             + "; ".join(looked) + ".")
        self._load_file(path, s, progress, cancel)

    def _release_backend(self) -> None:
        """Take the model off the GPU (it stays loaded on the CPU)."""
        close = getattr(self._backend, "close", None)
        if callable(close):
            close()
        self._backend = None
        self._backend_key = None
        if self._injected is None and importlib.util.find_spec("torch") is not None:
            try:
                from ...diffusion.run import memory

                memory.release_cached_memory()
            except Exception:  # unloading must not fail
                log.debug("Could not release cached memory", exc_info=True)

    def unload(self) -> None:
        self._release_backend()
        self._model = None
        self._model_key = None

    # -- generation ---------------------------------------------------------------------------------
    def _choose_mode(self, settings: Settings, sketch: bool = False) -> str:
        if settings.device == "cpu":
            return "high"
        if self._injected is not None:
            return "high" if settings.memory == "auto" else settings.memory
        from ...diffusion.run import memory

        if not memory.device_available(settings.device):
            raise EngineUnavailable(self._probe_device(settings)[1])  # type: ignore[index]
        key = self._backend_key
        if self._backend is not None and key is not None and key.same_model(BackendKey.of(settings)):
            if settings.memory in ("auto", key.mode):
                return key.mode  # already placed: the memory it holds is ours, not free
            self._release_backend()
        info = memory.free_vram_bytes(settings.device)
        return memory.choose_mode(settings.memory, info[0] if info else None, settings.dtype, sketch=sketch).mode

    def interpolate(self, request: InterpolationRequest, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> InterpolationResult:
        request.validate()
        progress = progress or no_progress
        cancel = cancel or CancelToken()
        sketch_options, params = split_sketch_params(request.params)
        settings = parse_settings(params, self._settings)
        if request.prompt:
            settings = replace(settings, prompt=request.prompt)
        if request.seed is not None:
            settings = replace(settings, seed=int(request.seed))
        if settings.seed is None:
            settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
        if self._injected is None:  # the precision that really runs (CPU: bf16 where native), for the record
            from ...diffusion.run import memory

            settings = replace(settings, dtype=memory.resolve_dtype(settings.device, settings.dtype))
        if settings.device == "cpu":
            log.warning(cpu_warning(settings.dtype))
        cancel.raise_if_cancelled()

        times = sorted(float(t) for t in request.times)
        started = time.monotonic()
        keys8 = (_to_rgb8(request.start), _to_rgb8(request.end))
        mode = self._choose_mode(settings, sketch=bool(sketch_options))
        if self._injected is None and settings.device != "cpu":
            from ...diffusion.run import memory

            def retry(old: str, new: str) -> None:
                self._release_backend()
                progress(ProgressEvent("load", 0, 0, f"out of GPU memory in the {old} mode; retrying in {new}"))

            def free_now() -> int | None:
                info = memory.free_vram_bytes(settings.device)
                return info[0] if info else None

            try:
                run = memory.run_with_oom_retry(
                    lambda run_mode: self._attempt(run_mode, settings, times, keys8, progress, cancel,
                                                   sketch_options),
                    mode, settings.dtype, free_bytes=free_now, on_retry=retry)
            except OutOfMemory:
                self._release_backend()  # nothing fits: give the GPU back rather than hold a half-placed model
                raise
        else:
            run = self._attempt(mode, settings, times, keys8, progress, cancel, sketch_options)

        cancel.raise_if_cancelled()
        plan, start_m, end_m, frames_at, jobs, used_mode = (run.plan, run.start, run.end, run.frames_at,
                                                            run.jobs, run.mode)
        progress(ProgressEvent("finish", 0, len(times), "colour match and resize"))
        generated = [frames_at[t] for t in times]
        if settings.colour_match:
            generated = colour.match_to_keys(generated, times, start_m, end_m, mask=plan.content_mask())
        out: dict[float, np.ndarray] = {}
        for i, (t, frame) in enumerate(zip(times, generated)):
            nearer = request.start if t < 0.5 else request.end
            fill = _to_rgb8(nearer) if plan.mode == "crop" else None
            out[t] = _like_key(plan.from_model(frame, fill=fill), request.start, nearer)
            progress(ProgressEvent("finish", i + 1, len(times)))
        frames = [out[float(t)] for t in request.times]  # in the order asked
        info = self.identity()
        info.update({
            "seed": settings.seed,
            # (not asdict: it would deep-copy an injected model, weights and all)
            "params": {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in ("model", "seed")},
            "memory_mode": used_mode,
            "model_size": [plan.dst_w, plan.dst_h],
            "passes": len(jobs),
            "pass_seeds": [settings.seed + job.index for job in jobs],
            "seconds": round(time.monotonic() - started, 3),
        })
        if sketch_options:
            info["sketches"] = sketches.provenance(sketch_options, run.sketch.get("landings", []),
                                                   run.sketch.get("sketch_encoder"))
        return InterpolationResult(frames, info)

    def _attempt(self, mode: str, settings: Settings, times: list[float], keys8: tuple[np.ndarray, np.ndarray],
                 progress: ProgressCallback, cancel: CancelToken, sketch_options: SketchOptions | None = None) -> _Run:
        """One try at every pass in one memory mode (the OOM retry may call it again, lower)."""
        progress(ProgressEvent("load", 0, 0, f"preparing the model ({mode} memory mode)"))
        sketch_found: dict[str, Any] = {}
        if sketch_options:
            self._ensure_sketch_encoder(settings, sketch_options, sketch_found)
        backend = self._get_backend(settings, mode)
        model_h, model_w = getattr(backend, "model_size", (MODEL_HEIGHT, MODEL_WIDTH))
        h, w = keys8[0].shape[:2]
        plan = plan_fit(w, h, settings.fit, model_w, model_h)
        start_m, end_m = plan.to_model(keys8[0]), plan.to_model(keys8[1])
        extra = self._sketch_kwargs(sketch_options, plan, sketch_found) if sketch_options else None
        frames_at, jobs = self._run_passes(backend, settings, times, start_m, end_m, progress, cancel, extra)
        return _Run(plan, start_m, end_m, frames_at, jobs, mode, sketch_found)

    # -- sketches -----------------------------------------------------------------------------------
    def _ensure_sketch_encoder(self, settings: Settings, options: SketchOptions, found: dict[str, Any]) -> None:
        """Attach the sketch encoder to the model (loaded once, placed with it by the memory mode)."""
        if self._injected is not None:
            return  # an injected backend gets the hints and does what it can with them
        model = settings.model
        model_path = None
        if model is not None and hasattr(model, "generate") and callable(model):
            model = getattr(model, "model", None)  # an injected pipeline: its model
        elif not settings.model_is_object:
            model_path, looked = find_model(settings.model)
            if model_path is None:
                raise ModelError("No ToonCrafter model was found (nothing is downloaded). Looked in: "
                                 + "; ".join(looked) + ".")
            model = self._load_file(model_path, settings)
        if model is None:
            return
        current = getattr(model, "sketch_encoder", None)
        wanted = options.encoder
        if current is not None and (wanted is None or getattr(model, "_sketch_encoder_file", None) == wanted):
            found["sketch_encoder"] = getattr(model, "_sketch_encoder_identity", {"injected": True})
            return
        path, looked = sketches.find_sketch_encoder(wanted, model_path)
        if path is None:
            raise ModelError("Sketches need the sketch encoder (sketch_encoder.ckpt, 1.46 GB, published next to "
                             "model.ckpt; nothing is downloaded). Looked in: " + "; ".join(looked) + ".")
        from ...diffusion.nets.sketch_encoder import SketchEncoderConfig
        from ...diffusion.run import memory
        from ...diffusion.weights.checkpoint import load_sketch_encoder

        self._release_backend()  # placed again below, with the encoder
        config = SketchEncoderConfig.for_unet(model.config.unet)
        model.sketch_encoder = load_sketch_encoder(path, config, dtype=memory.weight_dtype(settings.device,
                                                                                            settings.dtype))
        model._sketch_encoder_file = wanted
        model._sketch_encoder_identity = model_fingerprint(path)
        found["sketch_encoder"] = model._sketch_encoder_identity

    @staticmethod
    def _sketch_kwargs(options: SketchOptions, plan: Any, found: dict[str, Any]
                       ) -> Callable[[timing.PassJob], dict[str, Any]]:
        """Per pass: the hints of the sketches inside its span (blank pages elsewhere), the strength
        and the context setting, as the backend's keyword arguments."""
        planes: dict[int, np.ndarray] = {}
        found["landings"] = []

        def kwargs(job: timing.PassJob) -> dict[str, Any]:
            hints, landed = sketches.pass_hints(options.sketches, job.start.time, job.end.time, plan, planes)
            found["landings"] += [(job.index, landing) for landing in landed]
            return {"sketch_hints": hints, "sketch_scale": options.scale, "sketch_context": options.context}

        return kwargs

    def _run_passes(self, backend: Backend, settings: Settings, times: list[float], start_m: np.ndarray,
                    end_m: np.ndarray, progress: ProgressCallback, cancel: CancelToken,
                    extra: Callable[[timing.PassJob], dict[str, Any]] | None = None,
                    ) -> tuple[dict[float, np.ndarray], list[timing.PassJob]]:
        steps = _StepCounter(len(timing.plan_passes(times)), settings.steps, progress, cancel)
        expected_shape = (timing.GENERATED_FRAMES, *start_m.shape)

        def run_pass(job: timing.PassJob, start_img: np.ndarray, end_img: np.ndarray) -> np.ndarray:
            cancel.raise_if_cancelled()
            steps.begin_pass(job.index)
            result = backend(start_img, end_img, prompt=settings.prompt, steps=settings.steps,
                             cfg_scale=settings.cfg, eta=settings.eta, frame_stride=settings.frame_stride,
                             seed=settings.seed + job.index, callback=steps.on_event, cancel=cancel,
                             **(extra(job) if extra is not None else {}))
            cancel.raise_if_cancelled()
            frames = np.asarray(getattr(result, "frames", result))
            if frames.shape != expected_shape or frames.dtype != np.uint8:
                raise StudioError(f"The ToonCrafter pipeline returned frames of shape {frames.shape} "
                                  f"({frames.dtype}); expected {expected_shape} uint8.")
            steps.end_pass()
            return frames

        def timeline_of(job: timing.PassJob, frames: np.ndarray) -> timing.Timeline:
            if settings.trim_keys:
                return timing.trim_near_key_duplicates(list(frames), job.start.time, job.end.time)
            return timing.Timeline.nominal(job.start.time, job.end.time)

        return timing.execute_passes(times, start_m, end_m, run_pass, timeline_of)


@dataclass
class _Run:
    """What one attempt produced: the fit, the keys in the model frame, frames by time, passes."""

    plan: Any
    start: np.ndarray
    end: np.ndarray
    frames_at: dict[float, np.ndarray]
    jobs: list[timing.PassJob]
    mode: str
    sketch: dict[str, Any] = field(default_factory=dict)  # sketch landings and the encoder's identity


class _StepCounter:
    """Turns the pipeline's per-pass callbacks into one denoise progress over all passes, with ETA."""

    def __init__(self, passes: int, steps_per_pass: int, progress: ProgressCallback, cancel: CancelToken) -> None:
        self.passes = passes
        self.steps_per_pass = steps_per_pass
        self.progress = progress
        self.cancel = cancel
        self.done_steps = 0
        self.base_steps = 0
        self.label = ""
        self.t0 = time.monotonic()

    def begin_pass(self, index: int) -> None:
        self.passes = max(self.passes, index + 1)  # a re-planned pass may add one
        self.label = f"pass {index + 1}/{self.passes}"
        self.base_steps = self.done_steps

    def end_pass(self) -> None:
        self.done_steps = self.base_steps + self.steps_per_pass

    def on_event(self, *args: Any, **_kw: Any) -> None:
        event = args[0] if args and isinstance(args[0], ProgressEvent) else None
        if event is not None and event.stage != "denoise":  # encode / decode of this pass
            self.progress(ProgressEvent(event.stage, event.done, event.total, f"{self.label}: {event.message}"))
            self.cancel.raise_if_cancelled()
            return
        step, total = _step_of(args, self.steps_per_pass)
        if step <= 0:
            return
        all_steps = self.passes * self.steps_per_pass
        self.done_steps = self.base_steps + step
        eta = (time.monotonic() - self.t0) / self.done_steps * (all_steps - self.done_steps)
        # (The pipeline's preview is a latent tensor; tensors do not leave the engine.)
        self.progress(ProgressEvent("denoise", self.done_steps, all_steps, f"{self.label}, step {step}/{total}", eta))
        self.cancel.raise_if_cancelled()


def _step_of(args: tuple[Any, ...], default_total: int) -> tuple[int, int]:
    """(step done, total) from a pipeline callback's arguments: (step, total, ...) or a ProgressEvent."""
    if args and isinstance(args[0], ProgressEvent):
        return args[0].done, args[0].total or default_total
    step = int(args[0]) if args else 0
    total = int(args[1]) if len(args) > 1 and isinstance(args[1], int) else default_total
    return step, total
