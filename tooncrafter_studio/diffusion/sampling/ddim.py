"""The DDIM sampler of ToonCrafter (spec §10) as one small function, k-diffusion style.

`sample_ddim(model_fn, x_T, tables, cond, uncond, ...)` runs the loop from t = T−1 down to the first
DDIM timestep with classifier-free guidance, guidance rescale (unbiased std, on v), the dynamic
rescale of x̂₀, eta and the per-step noise draw (also at eta = 0, so a seed gives the same stream
whatever eta is). `model_fn(x, t, context) -> v` is the network with everything else it needs
(concat condition, fs) already bound; it is called once per step with cond and uncond stacked
on the batch axis (`batch_cfg=True`, same numbers, faster on a GPU) or twice.

The update is done in float32 whatever precision the network runs in, following the original's
float32 arithmetic; the square root of 1 − ᾱ_prev − σ² is taken of a radicand clamped at 0, which
the original does not do (it returns an all-NaN video at eta 1 for S = 7, 11, 14, ...).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..nets.schedule import DDIMTables

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Called after every step with (steps done, total steps, preview latent = the current x̂₀ estimate).
# It may raise (e.g. core.errors.Cancelled) to stop the loop at once.
StepCallback = Callable[[int, int, torch.Tensor], None]
# Gives one standard-normal tensor of the requested shape per call (x_T first, then one per step).
NoiseSource = Callable[[Sequence[int]], torch.Tensor]


def generator_noise(generator: torch.Generator, device: torch.device | str = "cpu") -> NoiseSource:
    """Noise from a local generator (never the global one), float32, drawn on the generator's device
    and moved to `device` (so a CPU generator gives the same numbers for any model device)."""

    def draw(shape: Sequence[int]) -> torch.Tensor:
        noise = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32)
        return noise.to(device)

    return draw


def replay_noise(draws: Sequence[torch.Tensor]) -> NoiseSource:
    """Replays stored draws in order (reference vectors); refuses a shape mismatch or running out."""
    queue = list(draws)

    def draw(shape: Sequence[int]) -> torch.Tensor:
        if not queue:
            raise RuntimeError("replay_noise: more draws requested than stored")
        value = torch.as_tensor(queue.pop(0), dtype=torch.float32)
        if tuple(value.shape) != tuple(shape):
            raise RuntimeError(f"replay_noise: stored draw has shape {tuple(value.shape)}, wanted {tuple(shape)}")
        return value

    return draw


class NonFiniteLatent(ArithmeticError):
    """The latent held NaN or infinite values after a step (`step` of `total`, counted from 1)."""

    def __init__(self, step: int, total: int) -> None:
        super().__init__(f"NaN or infinite latent after denoising step {step} of {total}")
        self.step, self.total = step, total


@dataclass
class StepTrace:
    """Every intermediate of one step, for checking against the reference vectors."""

    step: int
    timestep: int
    index: int
    x_in: torch.Tensor
    v_cond: torch.Tensor
    v_uncond: torch.Tensor | None
    pred_x0: torch.Tensor
    noise: torch.Tensor
    x_prev: torch.Tensor


def guided_v(
    v_cond: torch.Tensor, v_uncond: torch.Tensor | None, cfg_scale: float, guidance_rescale: float
) -> torch.Tensor:
    """Classifier-free guidance then guidance rescale, both on the v-prediction (traps 12)."""
    if v_uncond is None or cfg_scale == 1.0:
        v = v_cond
    else:
        v = v_uncond + cfg_scale * (v_cond - v_uncond)
    if guidance_rescale > 0.0:
        dims = list(range(1, v.ndim))
        std_cond = v_cond.std(dim=dims, keepdim=True)  # unbiased (N−1), as the original
        std_guided = v.std(dim=dims, keepdim=True)
        rescaled = v * (std_cond / std_guided)
        v = guidance_rescale * rescaled + (1.0 - guidance_rescale) * v
    return v


def _scalar(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A float32 scalar tensor on x's device (the original fills float32 tensors with each value)."""
    return torch.tensor(float(value), dtype=torch.float32, device=like.device)


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    tables: DDIMTables,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    cfg_scale: float = 7.5,
    guidance_rescale: float = 0.7,
    noise: NoiseSource | None = None,
    callback: StepCallback | None = None,
    batch_cfg: bool = True,
    trace: list[StepTrace] | None = None,
    check_finite: bool = False,
) -> torch.Tensor:
    """Denoise x_T (B, C, T, H, W) over the DDIM `tables`; returns the final latent (float32).

    `noise` gives the per-step draws (always drawn, one tensor shaped like x per step); None uses a
    fresh unseeded CPU generator. `uncond` None (or cfg_scale 1) skips guidance. `callback` runs
    after each step and may raise to cancel. `trace`, when a list, receives a StepTrace per step.
    `check_finite`: raise NonFiniteLatent as soon as a step leaves a NaN or inf in x (one tiny
    device-to-host read per step), rather than carry it to a black video.
    """
    if noise is None:
        noise = generator_noise(torch.Generator().manual_seed(secrets.randbits(63)), x_T.device)
    use_uncond = uncond is not None and cfg_scale != 1.0
    x = x_T.to(torch.float32)
    batch = x.shape[0]
    total = tables.steps
    device = x.device
    sqrt_acp = tables.sqrt_alphas_cumprod.to(device)
    sqrt_1m_acp = tables.sqrt_one_minus_alphas_cumprod.to(device)
    shape = (batch,) + (1,) * (x.ndim - 1)

    for step in range(total):
        index = total - 1 - step
        t_value = int(tables.timesteps[index])
        t = torch.full((batch,), t_value, dtype=torch.long, device=device)

        if use_uncond and batch_cfg:
            both = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond])).to(torch.float32)
            v_cond, v_uncond = both[:batch], both[batch:]
        else:
            v_cond = model_fn(x, t, cond).to(torch.float32)
            v_uncond = model_fn(x, t, uncond).to(torch.float32) if use_uncond else None
        v = guided_v(v_cond, v_uncond, cfg_scale, guidance_rescale)

        # v-parameterisation with the 1000-entry tables (indexed by t, not by the DDIM index)
        a_sqrt = sqrt_acp[t].reshape(shape)
        s_sqrt = sqrt_1m_acp[t].reshape(shape)
        eps = a_sqrt * v + s_sqrt * x
        pred_x0 = a_sqrt * x - s_sqrt * v
        if tables.use_dynamic_rescale:
            pred_x0 = pred_x0 * (_scalar(tables.scale_arr_prev[index], x) / _scalar(tables.scale_arr[index], x))

        a_prev = _scalar(tables.alphas_prev[index], x)
        sigma = _scalar(tables.sigmas[index], x)
        radicand = torch.clamp(1.0 - a_prev - sigma**2, min=0.0)  # trap 15: can round below 0
        direction = radicand.sqrt() * eps
        draw = noise(tuple(x.shape)).to(device=device, dtype=torch.float32)  # drawn even when sigma = 0
        x_prev = a_prev.sqrt() * pred_x0 + direction + sigma * draw

        if trace is not None:
            trace.append(StepTrace(step, t_value, index, x, v_cond, v_uncond, pred_x0, draw, x_prev))
        if check_finite and not bool(torch.isfinite(x_prev).all()):
            raise NonFiniteLatent(step + 1, total)
        x = x_prev
        if callback is not None:
            callback(step + 1, total, pred_x0)
    return x
