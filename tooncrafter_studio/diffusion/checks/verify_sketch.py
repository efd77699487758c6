"""Checkers of the sketch-guidance vectors (vectors/sketch/README.md) for `diffusion.checks.verify`:
preprocessing, the reduced and full encoders (both context variants), the reduced UNet with
control (cond + uncond batched batch-major, scales 0.6 and 1.0, scale 0 = plain bit for bit), the
e2e generation with the stored draws replayed, and the fill-rule checksums of both encoders."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from ..nets.sketch_encoder import SketchEncoder, SketchEncoderConfig, build_sketch_encoder
from ..run.sketch_preprocess import fork_geometry, fork_hint, grey_u8, to_rgb8
from ..sampling.sketch_guidance import SketchGuidance
from .fill import fill_module, fill_tensor
from .verify import Comparison, compare, compare_probe, register, tensor_stats

SINGLE_PASS = 1e-5
HINT_ABS = 1e-5  # hints: absolute (README §4)
MULTI_STEP = 1e-3
VARIANTS = {"ctx333": "all", "ctx77": "text"}


def filled_encoder(config: SketchEncoderConfig) -> SketchEncoder:
    """The encoder with the fill rule's weights (keys without prefix), float32 on the CPU."""
    encoder = build_sketch_encoder(config, device="cpu")
    fill_module(encoder)
    return encoder


@functools.lru_cache(maxsize=1)
def reduced_encoder() -> SketchEncoder:
    return filled_encoder(SketchEncoderConfig.reduced())


def _t(z, key: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(z[key]))


def _exact(name: str, ours, reference) -> Comparison:
    return compare(name, np.asarray(ours).astype(np.int64), np.asarray(reference).astype(np.int64), tolerance=0.0)


# --------------------------------------------------------------------------------------------------
# Preprocessing


@register("sketch_preprocess.npz")
def check_preprocess(path: Path) -> list[Comparison]:
    z = np.load(path)
    resolution = tuple(int(v) for v in z["resolution"])
    results: list[Comparison] = []
    for name in (str(n) for n in z["names"]):
        image = z[f"{name}/input_u8"]
        rgb = image[..., :3]  # the fork ignores alpha
        results.append(_exact(f"{name}/gray_u8", grey_u8(rgb), z[f"{name}/gray_u8"]))
        results.append(_exact(f"{name}/inverted_u8", 255 - grey_u8(rgb), z[f"{name}/inverted_u8"]))
        geometry = fork_geometry(*image.shape[:2], resolution)
        results.append(_exact(f"{name}/resized_hw", geometry.resized_hw, z[f"{name}/resized_hw"]))
        results.append(_exact(f"{name}/pad_ltrb", geometry.pad_ltrb, z[f"{name}/pad_ltrb"]))
        results.append(_exact(f"{name}/crop_top_left", geometry.crop_top_left, z[f"{name}/crop_top_left"]))
        results.append(compare(f"{name}/hint", fork_hint(rgb, resolution), z[f"{name}/hint"], HINT_ABS, scale=1.0))
        if f"{name}/hint_noaa" in z:
            results.append(compare(f"{name}/hint_noaa", fork_hint(rgb, resolution, antialias=False),
                                   z[f"{name}/hint_noaa"], HINT_ABS, scale=1.0))
        if f"{name}/over_white_u8" in z:  # ours: transparent pages composited over white
            results.append(_exact(f"{name}/over_white_u8", to_rgb8(image), z[f"{name}/over_white_u8"]))
            results.append(compare(f"{name}/hint_over_white", fork_hint(image, resolution),
                                   z[f"{name}/hint_over_white"], HINT_ABS, scale=1.0))
    return results


# --------------------------------------------------------------------------------------------------
# Encoder


def run_encoder(encoder: SketchEncoder, x, hint, t, context, mode: str, probes: list[str] | None = None):
    """Residuals (unscaled) and the first output of each probed module. `context` (B, L, D) for
    the B batch rows of the frames."""
    recorded: dict[str, torch.Tensor] = {}
    handles = []
    for name in probes or []:
        def hook(module, inputs, output, name=name):
            if name not in recorded:
                recorded[name] = output.detach().clone()
        handles.append(encoder.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.inference_mode():
            frames = x.shape[0] // context.shape[0]
            residuals = encoder(x, hint, t, encoder.frame_context(context, frames, mode))
    finally:
        for handle in handles:
            handle.remove()
    return residuals, recorded


def encoder_probe_names(config: SketchEncoderConfig) -> list[str]:
    blocks = 1 + len(config.channel_mult) * config.num_res_blocks + len(config.channel_mult) - 1
    return ["time_embed", "input_hint_block"] + [f"input_blocks.{i}" for i in range(blocks)] + ["middle_block"]


@register("sketch_encoder_reduced.npz")
def check_encoder_reduced(path: Path) -> list[Comparison]:
    z = np.load(path)
    encoder = reduced_encoder()
    x, hint, t, context = _t(z, "x"), _t(z, "hint"), _t(z, "t"), _t(z, "context")
    results: list[Comparison] = []
    names = encoder_probe_names(encoder.config)
    for variant, mode in VARIANTS.items():
        residuals, probes = run_encoder(encoder, x, hint, t, context, mode, names)
        for i, residual in enumerate(residuals):
            results.append(compare(f"{variant}/ctrl{i:02d}", residual, z[f"{variant}/ctrl{i:02d}"]))
        for name in names:
            key = f"{variant}/probe/{name}/call0"
            if f"{key}/stats" in z:
                results += compare_probe(f"{variant}/{name}", probes[name], z, key)
    return results


@register("sketch_encoder_full.npz")
def check_encoder_full(path: Path) -> list[Comparison]:
    z = np.load(path)
    encoder = filled_encoder(SketchEncoderConfig())
    x, hint, t, context = _t(z, "x"), _t(z, "hint"), _t(z, "t"), _t(z, "context")
    results = [compare("hint frame 0 (preprocessed sketch_u8)", fork_hint(z["sketch_u8"]), z["hint"][0], HINT_ABS,
                       scale=1.0)]
    for variant, mode in VARIANTS.items():
        residuals, _ = run_encoder(encoder, x, hint, t, context, mode)
        for i, residual in enumerate(residuals):
            key = f"{variant}/ctrl{i:02d}"
            results.append(_exact(f"{key}/shape", residual.shape, z[f"{key}/shape"]))
            stats = z[f"{key}/stats"]
            scale = float(max(abs(stats[3]), abs(stats[4])))
            results.append(compare(f"{key}/stats", tensor_stats(residual), stats, SINGLE_PASS, scale))
            frame_stats = np.stack([tensor_stats(residual[f]) for f in range(residual.shape[0])])
            results.append(compare(f"{key}/frame_stats", frame_stats, z[f"{key}/frame_stats"], SINGLE_PASS, scale))
            head = z[f"{key}/head"]
            results.append(compare(f"{key}/head", residual.flatten()[: head.size], head, SINGLE_PASS, scale))
            results.append(compare(f"{key}/sub", residual[:, 0:4, ::4, ::4], z[f"{key}/sub"], SINGLE_PASS, scale))
    del encoder
    return results


# --------------------------------------------------------------------------------------------------
# UNet with control


@functools.lru_cache(maxsize=1)
def reduced_wrapper():
    """The reduced UNet (fill rule) in its hybrid-conditioning wrapper; nothing else is built."""
    from ..nets.model import DiffusionWrapper
    from ..nets.unet import UNetConfig
    from .verify_unet import build_filled_unet

    return DiffusionWrapper(build_filled_unet(UNetConfig.reduced())).eval()


def hint_frames(hint_bcthw: torch.Tensor) -> torch.Tensor:
    """(1, 1, T, H, W) as the fork stores it -> (T, 1, H, W)."""
    return hint_bcthw[0].transpose(0, 1).contiguous()


@register("sketch_unet_reduced.npz")
def check_unet_reduced(path: Path) -> list[Comparison]:
    z = np.load(path)
    wrapper = reduced_wrapper()
    unet = wrapper.diffusion_model
    x, c_concat, context, t, fs = (_t(z, k) for k in ("x", "c_concat", "context", "t", "fs"))
    hints = hint_frames(_t(z, "hint"))
    frames = x.shape[2]
    results: list[Comparison] = []
    with torch.inference_mode():
        plain = wrapper(x, t, c_concat, context, fs)
        # unscaled residuals of each variant, computed once (scale 1) and scaled per run below
        unscaled = {mode: SketchGuidance(reduced_encoder(), hints, 1.0, mode).residuals(x, t, context)
                    for mode in VARIANTS.values()}
        zero = wrapper(x, t, c_concat, context, fs, control=[r * 0.0 for r in unscaled["all"]])
    results.append(compare("out_plain", plain, z["out_plain"]))
    results.append(Comparison("scale 0 == out_plain bit for bit", float((zero - plain).abs().max()),
                              0.0 if torch.equal(zero, plain) else float("inf"), 0.0))

    # probes of ctx333 at 0.6: UNet modules (rows of call k = batch row k) and the unscaled residuals
    prefix = "ctx333/scale0.6/probe"
    names = ["middle_block", "out"] + [f"output_blocks.{i}" for i in range(len(unet.output_blocks))]
    recorded: dict[str, torch.Tensor] = {}

    def keep(name: str, output) -> None:  # returns None: a hook's return value would replace the output
        recorded.setdefault(name, output.detach().clone())

    for variant, mode in VARIANTS.items():
        for scale in (float(s) for s in z["scales"]):
            key = f"{variant}/out_scale{scale:g}" if f"{variant}/out_scale{scale:g}" in z else f"{variant}/out_scale{scale}"
            probed = variant == "ctx333" and scale == 0.6
            handles = [unet.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: keep(n, o))
                       for n in (names if probed else [])]
            try:
                with torch.inference_mode():
                    out = wrapper(x, t, c_concat, context, fs, control=[r * scale for r in unscaled[mode]])
            finally:
                for handle in handles:
                    handle.remove()
            results.append(compare(key, out, z[key]))
            if probed:
                negative = z["negative/out_repeat_major_ctx333_scale0.6"]
                gap = float(np.abs(to_np(out) - negative).max() / np.abs(negative).max())
                results.append(Comparison("differs from the repeat-major layout", gap,
                                          0.0 if gap > 1e-3 else float("inf"), 0.0,
                                          f"ours vs repeat-major: {gap:.3f} of max |out|"))
    for call in range(x.shape[0]):
        rows = slice(call * frames, (call + 1) * frames)
        for name in names:
            key = f"{prefix}/{name}/call{call}"
            if f"{key}/stats" in z:
                results += compare_probe(f"{name}/call{call}", recorded[name][rows], z, key)
        for i, residual in enumerate(unscaled["all"]):
            key = f"{prefix}/ctrl{i:02d}_unscaled/call{call}"
            if f"{key}/stats" in z:
                results += compare_probe(f"ctrl{i:02d}_unscaled/call{call}", residual[rows], z, key)
    return results


def to_np(value: torch.Tensor) -> np.ndarray:
    return value.detach().double().numpy()


# --------------------------------------------------------------------------------------------------
# End to end


@register("sketch_e2e_reduced.npz")
def check_e2e_reduced(path: Path) -> list[Comparison]:
    from ..nets.autoencoder import decode_interpolation
    from ..run.pipeline import ToonCrafterPipeline
    from ..sampling.ddim import StepTrace, replay_noise, sample_ddim
    from .verify_sampler import reduced_filled_model

    z = np.load(path)
    call = json.loads(str(z["call"]))
    model = reduced_filled_model()
    pipe = ToonCrafterPipeline(model)
    results: list[Comparison] = []
    frames_u8 = z["sketch_frames_u8"]
    hints = np.stack([fork_hint(frame, tuple(frames_u8.shape[1:3])) for frame in frames_u8])
    results.append(compare("hint", hints, hint_frames(_t(z, "hint")), HINT_ABS, scale=1.0))
    videos = _t(z, "videos")
    start, end = videos[0, :, 0], videos[0, :, -1]
    draws = [_t(z, f"draw{i}") for i in range(len(z["draw_roles"]))]
    steps = len(draws) - 2
    scale = float(call.get("control_scale", 0.6))
    guidance = SketchGuidance(reduced_encoder(), torch.from_numpy(hints), scale, "all")
    prompt = str(z["prompt"])
    with torch.inference_mode():
        conditioning = pipe.prepare(start, end, prompt, int(z["fs"][0]), draws[0])
    for name, ours in (("cond_context", conditioning.cond), ("uncond_context", conditioning.uncond),
                       ("c_concat", conditioning.c_concat)):
        results.append(compare(name, ours, z[name]))
    trace: list[StepTrace] = []
    tables = pipe.tables(steps, 1.0)
    with torch.inference_mode():
        latent = sample_ddim(pipe.model_fn(conditioning, guidance), draws[1], tables, conditioning.cond,
                             conditioning.uncond, cfg_scale=7.5, guidance_rescale=0.7, noise=replay_noise(draws[2:]),
                             trace=trace)
        video, _, _ = decode_interpolation(model.first_stage_model, latent, conditioning.references)
    for k, step in enumerate(trace):
        for name in ("x_in", "v_cond", "v_uncond"):
            results.append(compare(f"step{k}/{name}", getattr(step, name), z[f"step{k}/{name}"], MULTI_STEP))
    results.append(compare("samples", latent, z["samples"], MULTI_STEP))
    results.append(compare("video", video.float()[None], z["video"], MULTI_STEP))
    return results


# --------------------------------------------------------------------------------------------------
# Fill-rule checksums


def check_checksums(path: Path, config: SketchEncoderConfig, every: int = 1) -> list[Comparison]:
    """Our encoder's keys and shapes equal the table's, and the fill rule gives each sampled key's
    [sum, sum |x|, first element] (float64) within the table's rounding."""
    table = json.loads(path.read_text())
    shapes = {k: list(v.shape) for k, v in build_sketch_encoder(config).state_dict().items()}
    results = [Comparison("key set and order", 0.0, 0.0 if list(shapes) == list(table) else float("inf"), 0.0,
                          f"{len(shapes)} keys, table {len(table)}")]
    bad_shapes = [k for k in table if shapes.get(k) != table[k][0]]
    results.append(Comparison("shapes", float(len(bad_shapes)), 0.0 if not bad_shapes else float("inf"), 0.0,
                              ", ".join(bad_shapes[:3])))
    sums, refs = [], []
    for key in list(table)[::every]:
        shape, total, total_abs, first = table[key]
        value = fill_tensor(key, shape).double()
        sums.append([value.sum().item() / max(total_abs, 1e-30), value.abs().sum().item() / max(total_abs, 1e-30),
                     value.flatten()[0].item()])
        refs.append([total / max(total_abs, 1e-30), 1.0, first])
    results.append(compare(f"fill sums / sum|x| and first elements ({len(sums)} keys)", np.array(sums),
                           np.array(refs), 1e-7, scale=1.0))
    return results


@register("fill_checksums_sketch_reduced.json")
def check_checksums_reduced(path: Path) -> list[Comparison]:
    return check_checksums(path, SketchEncoderConfig.reduced())


@register("fill_checksums_sketch_full.json")
def check_checksums_full(path: Path) -> list[Comparison]:
    return check_checksums(path, SketchEncoderConfig())
