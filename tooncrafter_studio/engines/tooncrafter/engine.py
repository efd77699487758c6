"""The ToonCrafter engine: keys of any size in, in-betweens at the requested times out.

`interpolate` parses the request (settings.py), fits the keys into the model frame (fit.py), runs
as many model passes as the times need (timing.py) on the backend (backend.py: loading, the memory
mode, the out-of-memory retry), colour-matches the frames to the keys (colour.py) and maps them
back to the keys' resolution, aspect, channels and depth. It loads nothing itself: `load()` reads
the weights, the backend places them. Torch is imported only through `diffusion`, lazily.

A generation backend can be injected (constructor `backend=` or `params["model"]` set to an
object instead of a path): see backend.py for what it is called with. Tests use a tiny random
model this way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import OutOfMemory, StudioError
from ...core.paths import find_model
from ...core.progress import CancelToken, ProgressCallback, ProgressEvent, no_progress
from ...diffusion.run.params import GenerationParams
from ...media.imageio import to_bit_depth
from ..base import Engine, EngineCapabilities, InterpolationRequest, InterpolationResult, ProbeResult
from ..sketch import SketchOptions
from . import colour, sketches, timing
from .backend import (  # noqa: F401  (re-exported: the engine's module is where callers look)
    NO_MODEL,
    Backend,
    BackendFactory,
    BackendKey,
    Backends,
    PipelineBackend,
    load_model_file,
    model_fingerprint,
)
from .backend import check_model_file as _check_model_file
from .backend import missing_packages as _missing_packages
from .fit import MODEL_HEIGHT, MODEL_WIDTH, plan_fit
from .settings import OPTION_NAMES, Settings, for_request, parse_settings  # noqa: F401

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"


def cpu_warning(dtype: str | None = None) -> str:
    """What a CPU run costs, in the precision it will use (bf16 on CPUs with AVX-512 BF16 or AMX)."""
    from .presets import CPU_FORWARD_CPU_SECONDS, cpu_run_dtype, format_duration

    name = cpu_run_dtype(dtype)
    step = CPU_FORWARD_CPU_SECONDS[name]  # two forwards per step over 2 cores
    return (f"Running ToonCrafter on the CPU in {name}: a full-size generation takes "
            f"{'about an hour or more' if name == 'bf16' else 'hours'} (about {format_duration(step)} per "
            "denoising step on 2 cores; `doctor --selftest` measures this machine).")


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
        self._backends = Backends(backend, backend_factory)
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
    @property
    def _backend(self) -> Backend | None:  # (the dry run asks whether a backend is placed)
        return self._backends.current

    def load(self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        """Read the weights now (with progress and cancel) so that the first generation starts at once."""
        self._backends.load(self._settings, progress, cancel)

    def release_gpu(self) -> None:
        """Take the weights off the GPU and empty the allocator cache; the model stays loaded on the
        CPU, so the next generation only places it again."""
        self._backends.release()

    def unload(self) -> None:
        self._backends.unload()

    # -- generation ---------------------------------------------------------------------------------
    def interpolate(self, request: InterpolationRequest, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> InterpolationResult:
        request.validate()
        progress = progress or no_progress
        cancel = cancel or CancelToken()
        settings, sketch_options = for_request(request, self._settings)
        if self._injected is None:  # the precision that really runs (CPU: bf16 where native), for the record
            from ...diffusion.run import memory

            settings = replace(settings, dtype=memory.resolve_dtype(settings.device, settings.dtype))
        if settings.device == "cpu":
            log.warning(cpu_warning(settings.dtype))
        cancel.raise_if_cancelled()

        times = sorted(float(t) for t in request.times)
        started = time.monotonic()
        keys8 = (_to_rgb8(request.start), _to_rgb8(request.end))
        mode = self._backends.choose_mode(settings, bool(sketch_options), lambda: self._probe_device(settings)[1])
        run = self._backends.run(settings, mode, lambda run_mode: self._attempt(
            run_mode, settings, times, keys8, progress, cancel, sketch_options), progress)
        cancel.raise_if_cancelled()

        progress(ProgressEvent("finish", 0, len(times), "colour match and resize"))
        generated = [run.frames_at[t] for t in times]
        if settings.colour_match:
            generated = colour.match_to_keys(generated, times, run.start, run.end, mask=run.plan.content_mask())
        out: dict[float, np.ndarray] = {}
        for i, (t, frame) in enumerate(zip(times, generated)):
            nearer = request.start if t < 0.5 else request.end
            fill = _to_rgb8(nearer) if run.plan.mode == "crop" else None
            out[t] = _like_key(run.plan.from_model(frame, fill=fill), request.start, nearer)
            progress(ProgressEvent("finish", i + 1, len(times)))
        frames = [out[float(t)] for t in request.times]  # in the order asked
        info = self.identity()
        info.update({
            "seed": settings.seed,
            # (not asdict: it would deep-copy an injected model, weights and all)
            "params": {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in ("model", "seed")},
            "memory_mode": run.mode,
            "model_size": [run.plan.dst_w, run.plan.dst_h],
            "passes": len(run.jobs),
            "pass_seeds": [settings.seed + job.index for job in run.jobs],
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
        backend = self._backends.get(settings, mode, sketch_options)
        model_h, model_w = getattr(backend, "model_size", (MODEL_HEIGHT, MODEL_WIDTH))
        h, w = keys8[0].shape[:2]
        plan = plan_fit(w, h, settings.fit, model_w, model_h)
        start_m, end_m = plan.to_model(keys8[0]), plan.to_model(keys8[1])
        sketch_found: dict[str, Any] = {"sketch_encoder": self._backends.sketch_identity} if sketch_options else {}
        extra = self._sketch_kwargs(sketch_options, plan, sketch_found) if sketch_options else None
        frames_at, jobs = self._run_passes(backend, settings, times, start_m, end_m, progress, cancel, extra)
        return _Run(plan, start_m, end_m, frames_at, jobs, mode, sketch_found)

    # -- sketches -----------------------------------------------------------------------------------
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
            params = GenerationParams(prompt=settings.prompt, steps=settings.steps, cfg_scale=settings.cfg,
                                      eta=settings.eta, frame_stride=settings.frame_stride,
                                      seed=settings.seed + job.index, **(extra(job) if extra is not None else {}))
            result = backend(start_img, end_img, params, callback=steps.on_event, cancel=cancel)
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
