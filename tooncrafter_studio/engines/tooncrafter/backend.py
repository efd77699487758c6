"""The ToonCrafter engine's hold on the GPU: the model loaded once (kept on the CPU), the sketch
encoder, our pipeline built from them for a memory mode, the out-of-memory retry, and the release.

A backend is anything callable as `backend(start, end, params, callback=..., cancel=...)` with a
`GenerationParams` and returning 16 uint8 frames (16, H, W, 3) at the model size, or an object with
such `.frames` (our `ToonCrafterPipeline` itself qualifies); an optional `model_size` (height,
width) tells the engine the frame to fit the keys into. Tests inject a tiny one.

Torch is imported only here and only when a backend is built (through `diffusion`, lazily).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...core.errors import EngineUnavailable, ModelError, OutOfMemory
from ...core.paths import find_model
from ...core.progress import ProgressCallback, ProgressEvent
from ..sketch import SketchOptions
from . import sketches
from .settings import Settings

log = logging.getLogger(__name__)

Backend = Callable[..., np.ndarray]
BackendFactory = Callable[[Settings, str], Backend]
T = TypeVar("T")
NO_MODEL = ("No ToonCrafter model was found (nothing is downloaded on its own: "
            "Generate ▸ ToonCrafter Engine… ▸ Download model…). Looked in: ")


@dataclass(frozen=True)
class BackendKey:
    """What a placed backend depends on: a new key means a new backend (the old one is released)."""

    model: str  # the path setting, or "object:<id>" for an injected model
    device: str
    dtype: str
    mode: str = ""
    compile: bool = False  # a compiled UNet or another attention kernel is another backend (same model)
    attention: str = "auto"
    sketch_encoder: str = ""  # the encoder file placed with the UNet, if any

    @classmethod
    def of(cls, settings: Settings, mode: str = "", sketch_encoder: str = "") -> BackendKey:
        model = f"object:{id(settings.model)}" if settings.model_is_object else str(settings.model)
        return cls(model, settings.device, settings.dtype, mode, settings.compile, settings.attention, sketch_encoder)

    def same_model(self, other: BackendKey) -> bool:
        return (self.model, self.device, self.dtype) == (other.model, other.device, other.dtype)


# --------------------------------------------------------------------------------------------------
# Weight files


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


def missing_packages() -> list[str]:
    names = {"torch": "torch", "open_clip": "open_clip_torch", "safetensors": "safetensors"}
    return [pip for mod, pip in names.items() if importlib.util.find_spec(mod) is None]


def check_model_file(path: Path) -> None:
    """The strict key/shape check of diffusion/weights/checkpoint.py (no tensor is read); ModelError if bad."""
    from ...diffusion.weights.checkpoint import ExpectedKeys, WeightFile

    WeightFile(path).check(ExpectedKeys.for_config())


def load_model_file(path: Path, settings: Settings, progress: ProgressCallback | None = None,
                    cancel: Any = None) -> Any:
    """Our model with the file's weights, on the CPU in the run's precision (placed per mode later)."""
    from ...diffusion.run import memory
    from ...diffusion.weights.checkpoint import load_model

    return load_model(path, device="cpu", dtype=memory.weight_dtype(settings.device, settings.dtype),
                      progress=progress, cancel=cancel)


class PipelineBackend:
    """Our ToonCrafterPipeline built once for a memory mode (`from_files`); `close()` gives the GPU back."""

    def __init__(self, model: Any, mode: str, device: str, dtype_name: str, compile_unet: bool = False,
                 attention: str = "auto", sketch_encoder: Any = None) -> None:
        from ...diffusion.run.pipeline import ToonCrafterPipeline

        self.mode = mode
        self.pipeline = ToonCrafterPipeline.from_files(model, sketch_encoder, device, dtype_name, mode,
                                                       compile_unet=compile_unet, attention=attention)

    @property
    def model_size(self) -> tuple[int, int]:
        return self.pipeline.model_size

    def __call__(self, start: np.ndarray, end: np.ndarray, params: Any, **kwargs: Any) -> Any:
        return self.pipeline(start, end, params, **kwargs)

    def close(self) -> None:
        self.pipeline.close()


# --------------------------------------------------------------------------------------------------


class Backends:
    """The backend cache of one engine: at most one placed backend (a new key releases the old one),
    the model file read once and kept on the CPU between modes, the sketch encoder read once."""

    def __init__(self, injected: Backend | None, factory: BackendFactory | None = None) -> None:
        self.injected = injected
        self.factory = factory or self._pipeline_backend
        self.model: Any = None
        self.model_key: tuple[Any, ...] | None = None
        self.current: Backend | None = None
        self.key: BackendKey | None = None
        self.sketch_encoder: Any = None
        self.sketch_encoder_file: str | None = None
        self.sketch_identity: dict[str, Any] | None = None

    # -- choosing the memory mode ------------------------------------------------------------------
    def choose_mode(self, settings: Settings, sketch: bool, unavailable: Callable[[], str]) -> str:
        if settings.device == "cpu":
            return "high"
        if self.injected is not None:
            return "high" if settings.memory == "auto" else settings.memory
        from ...diffusion.run import memory

        if not memory.device_available(settings.device):
            raise EngineUnavailable(unavailable())
        key = self.key
        if self.current is not None and key is not None and key.same_model(BackendKey.of(settings)):
            if settings.memory in ("auto", key.mode):
                return key.mode  # already placed: the memory it holds is ours, not free
            self.release()
        info = memory.free_vram_bytes(settings.device)
        return memory.choose_mode(settings.memory, info[0] if info else None, settings.dtype, sketch=sketch).mode

    # -- running, with the out-of-memory retry -----------------------------------------------------
    def run(self, settings: Settings, mode: str, attempt: Callable[[str], T], progress: ProgressCallback) -> T:
        """`attempt(mode)`; on the GPU an out-of-memory error retries once, one mode lower, after
        releasing what the failed attempt placed."""
        if self.injected is not None or settings.device == "cpu":
            return attempt(mode)
        from ...diffusion.run import memory

        def retry(old: str, new: str) -> None:
            self.release()
            progress(ProgressEvent("load", 0, 0, f"out of GPU memory in the {old} mode; retrying in {new}"))

        def free_now() -> int | None:
            info = memory.free_vram_bytes(settings.device)
            return info[0] if info else None

        try:
            return memory.run_with_oom_retry(attempt, mode, settings.dtype, free_bytes=free_now, on_retry=retry)
        except OutOfMemory:
            self.release()  # nothing fits: give the GPU back rather than hold a half-placed model
            raise

    def get(self, settings: Settings, mode: str, sketch_options: SketchOptions | None = None) -> Backend:
        """The backend placed for `mode` (built when the key changed), with the sketch encoder the
        options ask for read and placed beside the UNet."""
        if self.injected is not None:
            return self.injected
        if sketch_options:
            self.prepare_sketch_encoder(settings, sketch_options)
        key = BackendKey.of(settings, mode, self.sketch_encoder_file or "")
        if self.current is None or self.key != key:
            self.release()
            self.current = self.factory(settings, mode)
            self.key = key
        return self.current

    def _pipeline_backend(self, settings: Settings, mode: str) -> Backend:
        """The default backend: the model (an injected one, or the file found, loaded once and kept
        on the CPU between modes) placed for `mode` in our pipeline, with the sketch encoder."""
        model = settings.model
        if model is not None and hasattr(model, "generate") and callable(model):
            return model  # an injected pipeline
        if not settings.model_is_object:
            model = self.load_file(self.model_path(settings), settings)
        return PipelineBackend(model, mode, settings.device, settings.dtype, settings.compile, settings.attention,
                               self.sketch_encoder)

    # -- loading ---------------------------------------------------------------------------------
    @staticmethod
    def model_path(settings: Settings) -> Path:
        path, looked = find_model(settings.model)
        if path is None:
            raise ModelError(NO_MODEL + "; ".join(looked) + ".")
        return path

    def load(self, settings: Settings, progress: ProgressCallback | None = None, cancel: Any = None) -> None:
        """Read the configured model file now (an injected model or backend needs nothing)."""
        if self.injected is not None or settings.model_is_object:
            return
        self.load_file(self.model_path(settings), settings, progress, cancel)

    def load_file(self, path: Path, settings: Settings, progress: ProgressCallback | None = None,
                  cancel: Any = None) -> Any:
        from ...diffusion.run import memory

        # the precision that will load (CPU: bf16 where native), so "fp16" and "bf16" there share one copy
        key = (str(path), path.stat().st_mtime_ns, settings.device, memory.resolve_dtype(settings.device, settings.dtype))
        if self.model_key != key:
            self.model = None
            self.model = load_model_file(path, settings, progress, cancel)
            self.model_key = key
        return self.model

    def prepare_sketch_encoder(self, settings: Settings, options: SketchOptions) -> dict[str, Any]:
        """Read the sketch encoder the options ask for (once; found next to the model unless named)
        and return its identity; the next backend is built with it."""
        model = settings.model
        model_path = None
        if model is not None and hasattr(model, "generate") and callable(model):
            self.sketch_identity = {"injected": True}  # an injected pipeline brings its own encoder
            return self.sketch_identity
        if not settings.model_is_object:
            model_path = self.model_path(settings)
            model = self.load_file(model_path, settings)
        wanted = options.encoder
        if self.sketch_encoder is not None and (wanted is None or self.sketch_encoder_file == str(wanted)):
            return self.sketch_identity or {}
        path, looked = sketches.find_sketch_encoder(wanted, model_path)
        if path is None:
            raise ModelError("Sketches need the sketch encoder (sketch_encoder.ckpt, 1.46 GB, published next to "
                             "model.ckpt; nothing is downloaded). Looked in: " + "; ".join(looked) + ".")
        from ...diffusion.nets.sketch_encoder import SketchEncoderConfig
        from ...diffusion.run import memory
        from ...diffusion.weights.checkpoint import load_sketch_encoder

        self.release()  # placed again, with the encoder
        config = SketchEncoderConfig.for_unet(model.config.unet)
        self.sketch_encoder = load_sketch_encoder(path, config,
                                                  dtype=memory.weight_dtype(settings.device, settings.dtype))
        self.sketch_encoder_file = str(wanted) if wanted is not None else str(path)
        self.sketch_identity = model_fingerprint(path)
        return self.sketch_identity

    # -- letting go --------------------------------------------------------------------------------
    def release(self) -> None:
        """Take the model off the GPU (it stays loaded on the CPU) and empty the allocator cache."""
        close = getattr(self.current, "close", None)
        if callable(close):
            close()
        self.current = None
        self.key = None
        if self.injected is None and importlib.util.find_spec("torch") is not None:
            try:
                from ...diffusion.run import memory

                memory.release_cached_memory()
            except Exception:  # unloading must not fail
                log.debug("Could not release cached memory", exc_info=True)

    def unload(self) -> None:
        self.release()
        self.model = None
        self.model_key = None
        self.sketch_encoder = self.sketch_encoder_file = self.sketch_identity = None
