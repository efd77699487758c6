"""ToonCrafterPipeline: two keyframes and a prompt in, 16 frames out (spec §1), diffusers style.

The pipeline holds the model (`build_model` + loaded weights) and runs the original's steps:
text and image conditioning (the constant unconditional embeddings are cached), posterior-sampled
VAE encoding of the two keys, the concat condition, DDIM (`ddim.sample_ddim`, the scheduler part)
and the two-pass decode with splice. It reports progress through a `ProgressCallback` (stages
"encode", "denoise", "decode") and stops within one step on cancel; a cancelled run never decodes.

Random numbers come from one local CPU `torch.Generator` seeded per call, in the original's order
(posterior noise (16,4,h,w), x_T, one draw per step), so a seed gives the same frames on any
device; `noise=` replays stored draws instead (reference vectors).

    pipe = ToonCrafterPipeline.from_files("model.ckpt", sketch_encoder=None, device="cuda", dtype="fp16",
                                          memory="balanced")  # loaded and placed once
    out = pipe(start_u8, end_u8, GenerationParams(prompt="a cat jumps", steps=50, seed=123),
               callback=progress, cancel=token)  # only runs the steps
    out.frames  # (16, H, W, 3) uint8, frames 0 and 15 the model's reconstructions of the keys
    pipe.close()  # the weights leave the device

As in diffusers, the pipeline owns its components: the model's networks and, for sketch guidance,
the sketch encoder (a constructor argument, placed by the memory mode with the UNet).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.errors import InputError, NumericalError
from ...core.progress import CancelToken, ProgressCallback, StageReporter
from ..nets.autoencoder import concat_condition, decode_interpolation, encode_pair
from ..nets.schedule import DDIMTables, ddim_tables
from ..sampling.ddim import NoiseSource, NonFiniteLatent, generator_noise, replay_noise, sample_ddim
from .params import (
    DEFAULT_CFG,
    DEFAULT_ETA,
    DEFAULT_FRAME_STRIDE,
    DEFAULT_GUIDANCE_RESCALE,
    DEFAULT_STEPS,
    GenerationParams,
)
from .preprocess import image_to_tensor, tensor_to_images

log = logging.getLogger(__name__)


# Called with a stage name before it runs ("text", "image", "vae_encode", "denoise", "decode"):
# lets a memory manager move modules between devices (the pipeline itself never moves weights).
StageHook = Callable[[str], None]


@dataclass
class Conditioning:
    """Everything the denoiser needs, computed once per generation."""

    cond: torch.Tensor  # (1, 77 + 256, D) text + per-frame image tokens
    uncond: torch.Tensor  # (1, 77 + 256, D) constant
    c_concat: torch.Tensor  # (1, 4, T, h, w) scaled latents of the keys at frames 0 and T-1
    references: list[torch.Tensor]  # decoder reference maps of the two keys
    fs: torch.Tensor  # (1,) long, frame stride


@dataclass
class PipelineOutput:
    frames: np.ndarray | None  # (T, H, W, 3) uint8; None when decode was skipped
    video: torch.Tensor | None  # (1, 3, T, H, W) float, unclamped (the original's output)
    latent: torch.Tensor  # (1, 4, T, h, w) final DDIM latent
    seed: int | None
    timings: dict[str, float] = field(default_factory=dict)


def _module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _all_finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def _precision_advice(dtype: torch.dtype) -> str:
    if dtype == torch.float16:
        return "run it again in bf16 (--dtype bf16, on GPUs that have it) or fp32 (--dtype fp32)"
    if dtype == torch.bfloat16:
        return "run it again in fp32 (--dtype fp32)"
    return "the model file may be damaged: check it with `tooncrafter-studio models check`"


@contextlib.contextmanager
def float32_weights(module: nn.Module) -> Iterator[None]:
    """The module's floating weights as float32 copies on their device for the block, then the very
    tensors it had before (so a memory mode's placement is left as it was)."""
    saved: list[tuple[nn.Module, str, bool, torch.Tensor]] = []
    for owner in module.modules():
        for table, is_param in ((owner._parameters, True), (owner._buffers, False)):
            for name, tensor in table.items():
                if tensor is not None and tensor.is_floating_point() and tensor.dtype != torch.float32:
                    saved.append((owner, name, is_param, tensor))
    try:
        for owner, name, is_param, tensor in saved:
            copy = tensor.detach().float()
            if is_param:
                owner._parameters[name] = nn.Parameter(copy, requires_grad=False)
            else:
                owner._buffers[name] = copy
        yield
    finally:
        for owner, name, is_param, tensor in saved:
            (owner._parameters if is_param else owner._buffers)[name] = tensor


class ToonCrafterPipeline:
    """Generation with a built ToonCrafter model (`diffusion.nets.model.ToonCrafterModel`)."""

    def __init__(
        self,
        model: nn.Module,
        batch_cfg: bool = True,
        lean_decode: bool = False,
        stage_hook: StageHook | None = None,
        sketch_encoder: nn.Module | None = None,
        placement: Any = None,
    ) -> None:
        self.model = model
        self.config = model.config
        self.batch_cfg = batch_cfg
        self.lean_decode = lean_decode
        self.stage_hook = stage_hook
        self.sketch_encoder = sketch_encoder
        self.placement = placement  # a memory mode's placement that from_files made (closed with us)
        self._uncond_text: torch.Tensor | None = None
        self._uncond_image: torch.Tensor | None = None

    @classmethod
    def from_files(
        cls,
        model: str | Path | nn.Module,
        sketch_encoder: str | Path | nn.Module | None = None,
        device: str = "cuda",
        dtype: str = "fp16",
        memory: str = "balanced",
        *,
        compile_unet: bool = False,
        attention: str = "auto",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ToonCrafterPipeline:
        """The pipeline built once: weights read (a path) or taken (a built model), the sketch encoder
        likewise, both cast to the run's precision and placed on `device` for the `memory` mode;
        `close()` takes them off the device again."""
        from ..nets.attention import set_sdpa_kernel
        from . import memory as memory_modes

        weight_dtype = memory_modes.weight_dtype(device, dtype)
        if not isinstance(model, nn.Module):
            from ..weights.checkpoint import load_model

            model = load_model(Path(model), device="cpu", dtype=weight_dtype, progress=progress, cancel=cancel)
        if sketch_encoder is not None and not isinstance(sketch_encoder, nn.Module):
            from ..nets.sketch_encoder import SketchEncoderConfig
            from ..weights.checkpoint import load_sketch_encoder

            sketch_encoder = load_sketch_encoder(Path(sketch_encoder), SketchEncoderConfig.for_unet(model.config.unet),
                                                 dtype=weight_dtype)
        set_sdpa_kernel(attention)
        placement = memory_modes.apply_memory_mode(model, memory, device, weight_dtype, sketch_encoder=sketch_encoder)
        if compile_unet:
            from .compile import compile_unet as compile_in_place

            compile_in_place(model.model.diffusion_model, device, memory)
        return cls(model, batch_cfg=placement.batch_cfg, lean_decode=placement.lean_decode,
                   stage_hook=placement.stage_hook, sketch_encoder=sketch_encoder, placement=placement)

    def close(self) -> None:
        """Take the weights off the device (they stay loaded on the CPU) and forget cached conditions."""
        from .compile import uncompile

        uncompile(self.model.model.diffusion_model)
        if self.placement is not None:
            self.placement.remove()
        self.clear_cache()

    # -- geometry ------------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        return self.config.frames

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this: VAE ×8 times the UNet's downsampling."""
        return 8 * 2 ** (len(self.config.unet.channel_mult) - 1)

    @property
    def model_size(self) -> tuple[int, int]:
        """(height, width) in pixels the model was trained at: 320 x 512."""
        h, w = self.config.latent_size
        return 8 * h, 8 * w

    def check_frames(self, start: torch.Tensor, end: torch.Tensor) -> None:
        if start.shape != end.shape or start.ndim != 3 or start.shape[0] != 3:
            raise InputError(f"Start and end frames must be RGB images of the same size, not {tuple(start.shape)} "
                             f"and {tuple(end.shape)}.")
        h, w = start.shape[1:]
        m = self.size_multiple
        if h % m or w % m:
            raise InputError(f"Frame size {w}x{h} is not usable: width and height must be multiples of {m} "
                             f"(the model works at {self.model_size[1]}x{self.model_size[0]}).")

    def _hook(self, stage: str) -> None:
        if self.stage_hook is not None:
            self.stage_hook(stage)

    # -- conditioning ------------------------------------------------------------------------

    @torch.no_grad()
    def encode_text(self, prompt: str) -> torch.Tensor:
        encoder = self.model.cond_stage_model
        return encoder.encode([prompt]).to(_module_device(encoder))

    @torch.no_grad()
    def encode_image(self, frame: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1] -> (1, 16·T, D) image context through CLIP and the Resampler."""
        embedder, resampler = self.model.embedder, self.model.image_proj_model
        tokens = embedder(frame.to(_module_device(embedder), _module_dtype(embedder)))
        return resampler(tokens.to(_module_device(resampler), _module_dtype(resampler)))

    @torch.no_grad()
    def unconditional_context(self, like: torch.Tensor) -> torch.Tensor:
        """[TextEncoder("") ; Resampler(ImageEmbedder(zero image))]: a per-model constant, cached.
        (The zero image is the same constant after CLIP preprocessing whatever its size.)"""
        if self._uncond_text is None:
            self._hook("text")
            self._uncond_text = self.encode_text("")
        if self._uncond_image is None:
            self._hook("image")
            self._uncond_image = self.encode_image(torch.zeros_like(like))
        return torch.cat([self._uncond_text, self._uncond_image.to(self._uncond_text.device)], dim=1)

    def clear_cache(self) -> None:
        self._uncond_text = self._uncond_image = None

    @torch.no_grad()
    def prepare(
        self, start: torch.Tensor, end: torch.Tensor, prompt: str, frame_stride: int, posterior_noise: torch.Tensor
    ) -> Conditioning:
        """Spec §1 steps 3-7. start/end (3, H, W) in [-1, 1]; posterior_noise (T, 4, h, w) as the
        original draws it for the 16-frame video (rows 0 and T-1 are used)."""
        start, end = start[None], end[None]
        # each encoder runs once per stage (a memory mode moves it in and out around the stage)
        self._hook("text")
        c_txt = self.encode_text(prompt)
        if self._uncond_text is None:
            self._uncond_text = self.encode_text("")
        self._hook("image")
        c_img = self.encode_image(start)
        if self._uncond_image is None:
            self._uncond_image = self.encode_image(torch.zeros_like(start))
        uncond = self.unconditional_context(start)
        cond = torch.cat([c_txt, c_img.to(c_txt.device)], dim=1)
        self._hook("vae_encode")
        vae = self.model.first_stage_model
        device, dtype = _module_device(vae), _module_dtype(vae)
        z_start, z_end, references = encode_pair(vae, start.to(device, dtype), end.to(device, dtype),
                                                 posterior_noise.to(device, dtype))
        c_concat = concat_condition(z_start.float(), z_end.float(), self.frames)
        fs = torch.tensor([int(frame_stride)], dtype=torch.long)
        return Conditioning(cond, uncond, c_concat, references, fs)

    # -- denoising -------------------------------------------------------------------------------

    def tables(self, steps: int, eta: float) -> DDIMTables:
        m = self.model
        buffers = {name: getattr(m, name) for name in
                   ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "scale_arr")}
        return ddim_tables(buffers, steps, eta, use_dynamic_rescale=self.config.schedule.use_dynamic_rescale)

    def model_fn(self, conditioning: Conditioning, sketch: Any = None
                 ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The UNet with the concat condition and fs bound: (x, t, context) -> v (batch of any size).
        `sketch` (a sketch_guidance.SketchGuidance) adds the sketch encoder's residuals."""
        wrapper = self.model.model
        device = _module_device(wrapper)
        c_concat = conditioning.c_concat.to(device)
        fs = conditioning.fs.to(device)

        def call(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, **extra: Any) -> torch.Tensor:
            b = x.shape[0]
            return wrapper(x.to(device), t.to(device), c_concat.expand(b, *c_concat.shape[1:]),
                           context.to(device), fs.expand(b), **extra)

        if sketch is not None:
            from ..sampling.sketch_guidance import controlled_call

            return controlled_call(call, sketch)
        return call

    def sketch_guidance(self, hints: Any, scale: float | None = None, context: str | None = None) -> Any:
        """A SketchGuidance from (T, 1, H, W) hints with the pipeline's sketch encoder; InputError
        when it has none."""
        from ..sampling.sketch_guidance import DEFAULT_CONTEXT, DEFAULT_SCALE, SketchGuidance

        encoder = self.sketch_encoder
        if encoder is None:
            raise InputError("Sketches need the sketch encoder (sketch_encoder.ckpt next to model.ckpt), "
                             "which is not loaded.")
        return SketchGuidance(encoder, hints, DEFAULT_SCALE if scale is None else scale,
                              context or DEFAULT_CONTEXT)

    # -- the whole generation -------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        start: torch.Tensor,
        end: torch.Tensor,
        prompt: str = "",
        steps: int = DEFAULT_STEPS,
        cfg_scale: float = DEFAULT_CFG,
        eta: float = DEFAULT_ETA,
        frame_stride: int = DEFAULT_FRAME_STRIDE,
        seed: int | None = None,
        guidance_rescale: float = DEFAULT_GUIDANCE_RESCALE,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        noise: NoiseSource | Sequence[torch.Tensor] | None = None,
        decode: bool = True,
        sketch: Any = None,
    ) -> PipelineOutput:
        """Tensor-level generation: start/end (3, H, W) in [-1, 1] -> PipelineOutput with `video`
        (1, 3, T, H, W) unclamped and `frames` uint8. `noise`: a NoiseSource or the stored draws
        (posterior noise, x_T, one per step) to replay; otherwise a CPU generator seeded with
        `seed` (None: a random seed, reported in the output)."""
        self.check_frames(start, end)
        if isinstance(frame_stride, bool) or not isinstance(frame_stride, (int, np.integer)) or frame_stride < 1:
            raise InputError(f"The frame stride must be a whole number of at least 1, not {frame_stride!r}.")
        cancel = cancel or CancelToken()
        tables = self.tables(steps, eta)  # validates steps and eta before any work
        if noise is None:
            if seed is None:
                seed = secrets.randbelow(2**31 - 1)  # never touches the global generators
            noise = generator_noise(torch.Generator().manual_seed(int(seed)), "cpu")
        elif not callable(noise):
            noise = replay_noise(list(noise))
        timings: dict[str, float] = {}
        h, w = start.shape[1] // 8, start.shape[2] // 8
        t_frames = self.frames
        channels = self.config.latent_channels

        # encode: text, image, VAE (3 units)
        clock = time.perf_counter()
        encode = StageReporter(callback, cancel, "encode", 3)
        encode.start("conditioning")
        posterior_noise = noise((t_frames, channels, h, w))
        conditioning = self.prepare(start, end, prompt, frame_stride, posterior_noise)
        encode.step(3, "keys encoded")
        timings["encode"] = time.perf_counter() - clock

        # denoise: one unit per DDIM step, preview = current x0 estimate
        clock = time.perf_counter()
        x_T = noise((1, channels, t_frames, h, w))
        self._hook("denoise")
        # The sampler's arithmetic runs where the UNet does (its tables follow x).
        x_T = x_T.to(_module_device(self.model.model))
        denoise = StageReporter(callback, cancel, "denoise", tables.steps)
        denoise.start(f"{tables.steps} steps")

        def on_step(done: int, total: int, preview: torch.Tensor) -> None:
            denoise.step(1, f"step {done}/{total}", preview=preview)

        model_fn = self.model_fn(conditioning) if sketch is None else self.model_fn(conditioning, sketch)
        try:
            latent = sample_ddim(
                model_fn, x_T, tables, conditioning.cond, conditioning.uncond,
                cfg_scale=cfg_scale, guidance_rescale=guidance_rescale, noise=noise, callback=on_step,
                batch_cfg=self.batch_cfg, check_finite=True,
            )
        except NonFiniteLatent as exc:
            dtype = _module_dtype(self.model.model)
            raise NumericalError(
                f"The generation broke down at denoising step {exc.step} of {exc.total}: the latent holds NaN or "
                f"infinite values (the {str(dtype).removeprefix('torch.')} model overflowed); nothing was written. "
                f"To fix it, {_precision_advice(dtype)}.") from None
        timings["denoise"] = time.perf_counter() - clock
        if not decode:
            return PipelineOutput(None, None, latent, seed, timings)

        cancel.raise_if_cancelled()
        clock = time.perf_counter()
        self._hook("decode")
        decode_stage = StageReporter(callback, cancel, "decode", 1)
        decode_stage.start("two-pass decode")
        video = self.decode_checked(latent, conditioning.references)
        decode_stage.step(1, "decoded")
        timings["decode"] = time.perf_counter() - clock
        return PipelineOutput(tensor_to_images(video[0]), video, latent, seed, timings)

    @torch.no_grad()
    def decode_checked(self, latent: torch.Tensor, references: list[torch.Tensor]) -> torch.Tensor:
        """The two-pass decode -> (1, 3, T, H, W) float32, finite. A half-precision decode that
        overflows (NaN/inf in the frames) is done again with float32 weights and activations, as
        diffusers' `force_upcast` does for its VAEs; frames still not finite fail the job."""
        vae = self.model.first_stage_model
        device, dtype = _module_device(vae), _module_dtype(vae)
        video, _, _ = decode_interpolation(vae, latent.to(device, dtype), references, lean=self.lean_decode)
        if _all_finite(video):
            return video.float()
        del video
        if dtype != torch.float32:
            log.warning("The %s VAE decode overflowed (NaN or inf in the frames); decoding this pass again in "
                        "float32.", str(dtype).removeprefix("torch."))
            video = self._decode_float32(vae, latent.to(device, torch.float32), references, dtype)
            if _all_finite(video):
                return video.float()
            del video
        raise NumericalError(
            "The decoded frames hold NaN or infinite values even in float32, so nothing was written; "
            f"{_precision_advice(torch.float32)}.")

    def _decode_float32(self, vae: nn.Module, latent: torch.Tensor, references: list[torch.Tensor],
                        overflowed: torch.dtype) -> torch.Tensor:
        """The float32 redo of an overflowed decode: float32 weights and activations need about twice
        the decode's memory, so when they do not fit it is done again in bounded pieces (the lean
        decode); when that does not fit either, the error names the overflow, not only the memory
        (an OutOfMemory here would rerun the whole generation one mode lower for nothing)."""
        from .memory import is_out_of_memory, release_cached_memory

        for lean in dict.fromkeys((self.lean_decode, True)):
            try:
                with float32_weights(vae):
                    video, _, _ = decode_interpolation(vae, latent, [r.float() for r in references], lean=lean)
                return video
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                log.warning("The float32 redo of the decode ran out of GPU memory%s.",
                            "" if lean else "; trying it again piece by piece")
                del exc
                release_cached_memory()
        raise NumericalError(
            f"The {str(overflowed).removeprefix('torch.')} decode overflowed (NaN or inf in the frames), and decoding "
            "it again in float32 ran out of GPU memory even piece by piece, so nothing was written. To fix it, "
            f"{_precision_advice(overflowed)}, or choose a lower memory mode (--memory low).")

    def __call__(
        self,
        start: np.ndarray,
        end: np.ndarray,
        params: GenerationParams | None = None,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        **overrides: Any,
    ) -> PipelineOutput:
        """uint8 (H, W, 3) keyframes at a usable size (the model's 320x512 for best results) ->
        PipelineOutput whose `frames` are (16, H, W, 3) uint8. `overrides`: fields of `params` by name
        (`pipe(a, b, steps=4, seed=1)`) or `noise=` / `decode=` of `generate`."""
        extra = {k: overrides.pop(k) for k in ("noise", "decode") if k in overrides}
        params = replace(params or GenerationParams(), **overrides)
        sketch = None
        if params.sketch_hints is not None:
            sketch = self.sketch_guidance(params.sketch_hints, params.sketch_scale, params.sketch_context)
        if sketch is not None:
            extra["sketch"] = sketch
        return self.generate(image_to_tensor(start), image_to_tensor(end), params.prompt, params.steps,
                             params.cfg_scale, params.eta, params.frame_stride, params.seed,
                             params.guidance_rescale, callback=callback, cancel=cancel, **extra)
