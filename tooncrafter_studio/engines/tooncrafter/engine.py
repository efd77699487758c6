"""The ToonCrafter engine: keys of any size in, in-betweens at the requested times out.

The engine fits the keys into the model frame, runs as many model passes as the times need
(`timing.execute_passes`), colour-matches the frames to the keys and maps them back to the keys'
resolution, aspect, channels and depth. The generation itself is `diffusion.pipeline`'s; this
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import EngineUnavailable, InputError, ModelError, OutOfMemory, StudioError
from ...core.paths import find_model
from ...core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from ...media.imageio import to_bit_depth
from ..base import Engine, EngineCapabilities, InterpolationRequest, InterpolationResult, ProbeResult
from . import colour, timing
from .fit import FIT_MODES, MODEL_HEIGHT, MODEL_WIDTH, plan_fit

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
MEMORY_CHOICES = ("auto", "high", "balanced", "low")
DEVICES = ("cuda", "cpu")
DTYPES = ("fp16", "bf16", "fp32")
ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")  # diffusion.attention.SDPA_KERNELS
MAX_STEPS = 60  # the 'uniform_trailing' spacing breaks beyond 60 (spec §0.15); the pipeline re-checks
CPU_WARNING = ("Running ToonCrafter on the CPU: a full-size generation takes hours "
               "(about 2.5 minutes per denoising step on 2 cores).")

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
    compile: bool = False  # torch.compile the UNet (diffusion/compile.py; falls back with one log line)
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
            from ...diffusion.checkpoint import identify

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
    """The strict key/shape check of diffusion/checkpoint.py (no tensor is read); ModelError if bad."""
    from ...diffusion.checkpoint import ExpectedKeys, WeightFile

    WeightFile(path).check(ExpectedKeys.for_config())


class PipelineBackend:
    """Our ToonCrafterPipeline on a model placed for a memory mode; `close()` gives the GPU back."""

    def __init__(self, model: Any, mode: str, device: str, dtype_name: str, compile_unet: bool = False,
                 attention: str = "auto") -> None:
        from ...diffusion import memory
        from ...diffusion.attention import set_sdpa_kernel
        from ...diffusion.pipeline import ToonCrafterPipeline

        dtype = memory.weight_dtype(device, dtype_name)
        self.mode = mode
        self.unet = model.unet
        set_sdpa_kernel(attention)
        self.placement = memory.apply_memory_mode(model, mode, device, dtype)
        if compile_unet:
            from ...diffusion.compile import compile_unet as compile_in_place

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
        from ...diffusion.compile import uncompile

        uncompile(self.unet)
        self.placement.remove()
        self.pipeline.clear_cache()


def load_model_file(path: Path, settings: Settings, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> Any:
    """Our model with the file's weights, on the CPU in the run's precision (placed per mode later)."""
    from ...diffusion import memory
    from ...diffusion.checkpoint import load_model

    return load_model(path, device="cpu", dtype=memory.weight_dtype(settings.device, settings.dtype),
                      progress=progress, cancel=cancel)


# --------------------------------------------------------------------------------------------------


class ToonCrafterEngine(Engine):
    id = "tooncrafter"
    label = "ToonCrafter (generative, GPU)"
    capabilities = EngineCapabilities(needs_gpu=True, supports_prompt=True, previews=False,
                                      max_inbetweens_per_pass=timing.MAX_PER_PASS, deterministic=True)

    def __init__(self, backend: Backend | None = None, backend_factory: BackendFactory | None = None,
                 **defaults: Any) -> None:
        self._settings = parse_settings(defaults)
        self._injected = backend
        self._factory = backend_factory or self._pipeline_backend
        self._model: Any = None
        self._model_key: tuple[Any, ...] | None = None
        self._backend: Backend | None = None
        self._backend_key: tuple[Any, ...] | None = None
        self._probe_cache: dict[tuple[Any, ...], str | None] = {}
        self._identity_cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    # -- configuration and probing ------------------------------------------------------------------
    def configure(self, params: dict[str, Any]) -> None:
        """Options that decide availability (model path, device); the CLI calls this before probe()."""
        self._settings = parse_settings(params, self._settings)

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
                                          "not installed: install the 'tooncrafter' extra "
                                          "(pip install 'tooncrafter-studio[tooncrafter]').")
        device_note = self._probe_device(s)
        if device_note is not None and not device_note[0]:
            return ProbeResult(False, device_note[1])
        if device_note is not None:
            notes.append(device_note[1])
        if self._injected is None and not s.model_is_object:
            path, looked = find_model(s.model)
            if path is None:
                return ProbeResult(False, "No ToonCrafter model was found (nothing is downloaded). Looked in: "
                                          + "; ".join(looked) + ". Put model.ckpt in one of these places or pass --model.")
            problem = self._checked(path)
            if problem:
                return ProbeResult(False, problem)
            notes.insert(0, f"model {path}")
        return ProbeResult(True, "; ".join(notes))

    def _probe_device(self, s: Settings) -> tuple[bool, str] | None:
        if s.device == "cpu":
            return True, CPU_WARNING
        from ...diffusion import memory

        if not memory.cuda_available():
            return False, ("No CUDA GPU is available here (PyTorch sees none). ToonCrafter needs an NVIDIA GPU; "
                           "use --device cpu to run on the processor anyway (a full-size run takes hours).")
        info = memory.free_vram_bytes(s.device)
        if info is None:
            return True, "CUDA"
        free, total = info
        try:
            choice = memory.choose_mode(s.memory, free, s.dtype)
        except OutOfMemory as exc:
            return False, str(exc)
        return True, f"CUDA, {memory.format_gib(free)} free of {memory.format_gib(total)}, {choice.mode} memory mode"

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
        key = self._key(settings, mode)
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
                raise ModelError("No ToonCrafter model was found (nothing is downloaded). Looked in: "
                                 + "; ".join(looked) + ".")
            model = self._load_file(path, settings)
        return PipelineBackend(model, mode, settings.device, settings.dtype, settings.compile, settings.attention)

    def _load_file(self, path: Path, settings: Settings, progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> Any:
        key = (str(path), path.stat().st_mtime_ns, settings.device, settings.dtype)
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
            raise ModelError("No ToonCrafter model was found (nothing is downloaded). Looked in: "
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
                from ...diffusion import memory

                memory.release_cached_memory()
            except Exception:  # unloading must not fail
                log.debug("Could not release cached memory", exc_info=True)

    def unload(self) -> None:
        self._release_backend()
        self._model = None
        self._model_key = None

    # -- generation ---------------------------------------------------------------------------------
    def _choose_mode(self, settings: Settings) -> str:
        if settings.device == "cpu":
            return "high"
        if self._injected is not None:
            return "high" if settings.memory == "auto" else settings.memory
        from ...diffusion import memory

        if not memory.cuda_available():
            raise EngineUnavailable(self._probe_device(settings)[1])  # type: ignore[index]
        key = self._backend_key
        if self._backend is not None and key is not None and key[:3] == self._key(settings)[:3]:
            if settings.memory in ("auto", key[3]):
                return key[3]  # already placed: the memory it holds is ours, not free
            self._release_backend()
        info = memory.free_vram_bytes(settings.device)
        return memory.choose_mode(settings.memory, info[0] if info else None, settings.dtype).mode

    @staticmethod
    def _key(settings: Settings, mode: str = "") -> tuple[Any, ...]:
        model = id(settings.model) if settings.model_is_object else str(settings.model)
        return (model, settings.device, settings.dtype, mode)

    def interpolate(self, request: InterpolationRequest, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> InterpolationResult:
        request.validate()
        progress = progress or no_progress
        cancel = cancel or CancelToken()
        settings = parse_settings(request.params, self._settings)
        if request.prompt:
            settings = replace(settings, prompt=request.prompt)
        if request.seed is not None:
            settings = replace(settings, seed=int(request.seed))
        if settings.seed is None:
            settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
        if settings.device == "cpu":
            log.warning(CPU_WARNING)
        cancel.raise_if_cancelled()

        start8, end8 = _to_rgb8(request.start), _to_rgb8(request.end)
        h, w = request.start.shape[:2]
        times = sorted(float(t) for t in request.times)
        started = time.monotonic()
        mode = self._choose_mode(settings)
        used_mode = mode
        fitted: dict[str, Any] = {}

        def attempt(run_mode: str) -> tuple[dict[float, np.ndarray], list[timing.PassJob]]:
            nonlocal used_mode
            used_mode = run_mode
            progress(ProgressEvent("load", 0, 0, f"preparing the model ({run_mode} memory mode)"))
            backend = self._get_backend(settings, run_mode)
            model_h, model_w = getattr(backend, "model_size", (MODEL_HEIGHT, MODEL_WIDTH))
            plan = plan_fit(w, h, settings.fit, model_w, model_h)
            fitted.update(plan=plan, start=plan.to_model(start8), end=plan.to_model(end8))
            return self._run_passes(backend, settings, times, fitted["start"], fitted["end"], progress, cancel)

        if self._injected is None and settings.device != "cpu":
            from ...diffusion import memory

            def retry(old: str, new: str) -> None:
                self._release_backend()
                progress(ProgressEvent("load", 0, 0, f"out of GPU memory in the {old} mode; retrying in {new}"))

            def free_now() -> int | None:
                info = memory.free_vram_bytes(settings.device)
                return info[0] if info else None

            frames_at, jobs = memory.run_with_oom_retry(attempt, mode, settings.dtype, free_bytes=free_now,
                                                        on_retry=retry)
        else:
            frames_at, jobs = attempt(mode)

        cancel.raise_if_cancelled()
        plan, start_m, end_m = fitted["plan"], fitted["start"], fitted["end"]
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
            "params": {k: v for k, v in asdict(settings).items() if k not in ("model", "seed")},
            "memory_mode": used_mode,
            "model_size": [plan.dst_w, plan.dst_h],
            "passes": len(jobs),
            "pass_seeds": [settings.seed + job.index for job in jobs],
            "seconds": round(time.monotonic() - started, 3),
        })
        return InterpolationResult(frames, info)

    def _run_passes(self, backend: Backend, settings: Settings, times: list[float], start_m: np.ndarray,
                    end_m: np.ndarray, progress: ProgressCallback, cancel: CancelToken
                    ) -> tuple[dict[float, np.ndarray], list[timing.PassJob]]:
        state = {"passes": len(timing.plan_passes(times)), "done_steps": 0, "t0": time.monotonic()}
        expected_shape = (timing.GENERATED_FRAMES, *start_m.shape)

        def run_pass(job: timing.PassJob, start_img: np.ndarray, end_img: np.ndarray) -> np.ndarray:
            cancel.raise_if_cancelled()
            state["passes"] = max(state["passes"], job.index + 1)
            label = f"pass {job.index + 1}/{state['passes']}"
            base_steps = state["done_steps"]

            def on_event(*args: Any, **_kw: Any) -> None:
                all_steps = state["passes"] * settings.steps
                event = args[0] if args and isinstance(args[0], ProgressEvent) else None
                if event is not None and event.stage != "denoise":  # encode / decode of this pass
                    progress(ProgressEvent(event.stage, event.done, event.total, f"{label}: {event.message}"))
                    cancel.raise_if_cancelled()
                    return
                step, total = _step_of(args, settings.steps)
                if step <= 0:
                    return
                state["done_steps"] = base_steps + step
                elapsed = time.monotonic() - state["t0"]
                eta = elapsed / state["done_steps"] * (all_steps - state["done_steps"])
                # (The pipeline's preview is a latent tensor; tensors do not leave the engine.)
                progress(ProgressEvent("denoise", state["done_steps"], all_steps, f"{label}, step {step}/{total}", eta))
                cancel.raise_if_cancelled()

            result = backend(start_img, end_img, prompt=settings.prompt, steps=settings.steps,
                             cfg_scale=settings.cfg, eta=settings.eta, frame_stride=settings.frame_stride,
                             seed=settings.seed + job.index, callback=on_event, cancel=cancel)
            cancel.raise_if_cancelled()
            frames = np.asarray(getattr(result, "frames", result))
            if frames.shape != expected_shape or frames.dtype != np.uint8:
                raise StudioError(f"The ToonCrafter pipeline returned frames of shape {frames.shape} "
                                  f"({frames.dtype}); expected {expected_shape} uint8.")
            state["done_steps"] = base_steps + settings.steps
            return frames

        def timeline_of(job: timing.PassJob, frames: np.ndarray) -> timing.Timeline:
            if settings.trim_keys:
                return timing.trim_near_key_duplicates(list(frames), job.start.time, job.end.time)
            return timing.Timeline.nominal(job.start.time, job.end.time)

        return timing.execute_passes(times, start_m, end_m, run_pass, timeline_of)


def _step_of(args: tuple[Any, ...], default_total: int) -> tuple[int, int]:
    """(step done, total) from a pipeline callback's arguments: (step, total, ...) or a ProgressEvent."""
    if args and isinstance(args[0], ProgressEvent):
        return args[0].done, args[0].total or default_total
    step = int(args[0]) if args else 0
    total = int(args[1]) if len(args) > 1 and isinstance(args[1], int) else default_total
    return step, total
