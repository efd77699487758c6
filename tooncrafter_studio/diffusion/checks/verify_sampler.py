"""Checkers of the schedule, the DDIM sampler and the whole pipeline for `diffusion.checks.verify`:
`schedule.npz`, `ddim_reduced.npz` (replayed network outputs, then the real reduced UNet) and
`e2e_reduced.npz` (conditioning, final latent and video with the stored draws replayed)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ..nets.schedule import ddim_tables, schedule_buffers
from ..sampling.ddim import StepTrace, replay_noise, sample_ddim
from .verify import Comparison, compare, register

SINGLE_PASS = 1e-5  # vectors/README §4
MULTI_STEP = 1e-3  # multi-step results with the stored noises replayed
SIGMA_TOLERANCE = 3e-8  # the stored sigmas, one float32 ulp after the loop's cast


@functools.lru_cache(maxsize=1)
def reduced_filled_model():
    """The reduced model of the vectors with weights by the fill rule (float32, CPU); cached."""
    from ..nets.config import ToonCrafterConfig
    from ..nets.model import build_model
    from .fill import fill_module

    model = build_model(ToonCrafterConfig.reduced(), device="cpu")
    fill_module(model)
    return model


@register("schedule.npz")
def check_schedule(path: Path) -> list[Comparison]:
    z = np.load(path)
    results = [compare(f"buffer/{name}", value, z[f"buffer/{name}"], tolerance=0.0)
               for name, value in schedule_buffers().items()]
    for key in sorted({k.split("/")[0] for k in z.files if k.startswith("ddim_S")}):
        steps, eta = int(key.split("_")[1][1:]), int(key.split("_")[2][3:])
        tables = ddim_tables(None, steps, eta).as_original()
        for name, value in tables.items():
            tolerance = SIGMA_TOLERANCE if name == "ddim_sigmas" else 0.0
            results.append(compare(f"{key}/{name}", value, z[f"{key}/{name}"], tolerance=tolerance))
    return results


def _replay_fn(z, prefix: str, cond: torch.Tensor):
    state = {"step": 0}

    def model_fn(x, t, context):
        k = state["step"]
        vc = torch.from_numpy(z[f"{prefix}step{k}/v_cond"])
        vu = torch.from_numpy(z[f"{prefix}step{k}/v_uncond"])
        state["step"] += 1
        return torch.cat([vc, vu]) if x.shape[0] == 2 else vc

    return model_fn


def _compare_trace(label: str, trace: list[StepTrace], z, prefix: str, names: tuple[str, ...]) -> list[Comparison]:
    results = []
    for k, step in enumerate(trace):
        for name in names:
            results.append(compare(f"{label}{prefix}step{k}/{name}", getattr(step, name), z[f"{prefix}step{k}/{name}"],
                                   tolerance=MULTI_STEP))
    return results


@register("ddim_reduced.npz")
def check_ddim_reduced(path: Path) -> list[Comparison]:
    z = np.load(path)
    t = lambda key: torch.from_numpy(z[key])  # noqa: E731
    cond, uncond, x_T = t("context_cond"), t("context_uncond"), t("x_T")
    results: list[Comparison] = []
    model = reduced_filled_model()
    wrapper = model.model
    c_concat, fs = t("c_concat"), t("fs")

    def unet_fn(x, timesteps, context):
        b = x.shape[0]
        return wrapper(x, timesteps, c_concat.expand(b, *c_concat.shape[1:]), context, fs.expand(b))

    for eta in (0, 1):
        prefix = f"eta{eta}/"
        steps = len(z[prefix + "timesteps"])
        noises = [t(f"{prefix}step{k}/noise") for k in range(steps)]
        tables = ddim_tables(model_buffers(model), steps, float(eta))
        # 1. the sampler alone, replaying the original's network outputs
        trace: list[StepTrace] = []
        out = sample_ddim(_replay_fn(z, prefix, cond), x_T, tables, cond, uncond, 7.5, 0.7,
                          noise=replay_noise(noises), trace=trace)
        results += _compare_trace("replay/", trace, z, prefix, ("pred_x0", "x_prev"))
        results.append(compare(f"replay/{prefix}samples", out, z[prefix + "samples"], tolerance=MULTI_STEP))
        # 2. with our reduced UNet (fill rule)
        trace = []
        with torch.inference_mode():
            out = sample_ddim(unet_fn, x_T, tables, cond, uncond, 7.5, 0.7, noise=replay_noise(noises), trace=trace)
        results += _compare_trace("unet/", trace, z, prefix, ("v_cond", "v_uncond", "pred_x0", "x_prev"))
        results.append(compare(f"unet/{prefix}samples", out, z[prefix + "samples"], tolerance=MULTI_STEP))
    return results


def model_buffers(model) -> dict[str, torch.Tensor]:
    return {name: getattr(model, name) for name in
            ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "scale_arr")}


@register("e2e_reduced.npz")
def check_e2e_reduced(path: Path) -> list[Comparison]:
    from ..run.pipeline import ToonCrafterPipeline

    z = np.load(path)
    pipe = ToonCrafterPipeline(reduced_filled_model())
    start, end = torch.from_numpy(z["frame_a"]), torch.from_numpy(z["frame_b"])
    draws = [torch.from_numpy(z[f"draw{i}"]) for i in range(len(z["draw_roles"]))]
    steps = len(draws) - 2
    results: list[Comparison] = []
    try:  # the encoders' own per-array check of the conditioning (tokens, embeddings), when present
        from .verify_encoders import check_e2e_conditioning
    except ImportError:
        check_e2e_conditioning = None
    if check_e2e_conditioning is not None:
        results += [Comparison(f"encoders/{r.name}", r.max_abs, r.relative, r.tolerance, r.note)
                    for r in check_e2e_conditioning(path)]
    with torch.inference_mode():
        conditioning = pipe.prepare(start, end, str(z["prompt"]), 10, draws[0])
    results.append(compare("cond_context", conditioning.cond, z["cond_context"], tolerance=SINGLE_PASS))
    results.append(compare("uncond_context", conditioning.uncond, z["uncond_context"], tolerance=SINGLE_PASS))
    results.append(compare("c_concat", conditioning.c_concat, z["c_concat"], tolerance=SINGLE_PASS))
    with torch.inference_mode():
        out = pipe.generate(start, end, str(z["prompt"]), steps=steps, cfg_scale=7.5, eta=1.0, frame_stride=10,
                            noise=draws)
    results.append(compare("samples", out.latent, z["samples"], tolerance=MULTI_STEP))
    results.append(compare("video", out.video[None], z["video"], tolerance=MULTI_STEP))
    return results
