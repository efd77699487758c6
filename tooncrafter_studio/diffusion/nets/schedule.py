"""Noise schedule of the ToonCrafter 512 model and the DDIM tables derived from it (spec §9, §10.1).

`schedule_buffers(cfg)` gives the 13 top-level buffers that the checkpoint stores (names, shapes and
values of the original: computed in float64, stored as float32). `ddim_tables(buffers, steps, eta)`
gives the per-step scalars of the DDIM sampler with 'uniform_trailing' spacing, with the precision
the original holds them in (so the sampler reproduces its float32 arithmetic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from ...core.errors import InputError, ModelError
from ._params import unwrap_params

# Checkpoint order of the top-level buffers (registration order of the original).
BUFFER_NAMES: tuple[str, ...] = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "scale_arr",
)
# The only buffers the sampler reads; the others are kept for a strict load of the original file.
SAMPLER_BUFFERS: tuple[str, ...] = ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "scale_arr")


@dataclass(frozen=True)
class ScheduleConfig:
    """Diffusion-schedule options of the original `LatentVisualDiffusion` params (512 model defaults)."""

    timesteps: int = 1000
    beta_schedule: str = "linear"
    linear_start: float = 0.00085
    linear_end: float = 0.012
    rescale_betas_zero_snr: bool = True
    parameterization: str = "v"
    use_dynamic_rescale: bool = True
    base_scale: float = 0.7
    turning_step: int = 400
    scale_factor: float = 0.18215

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ScheduleConfig:
        """From the model's YAML `params` mapping; keys that do not concern the schedule are ignored."""
        values = unwrap_params(params)
        known = {f.name for f in fields(cls)}
        kwargs = {k: values[k] for k in known if k in values}
        cfg = cls(**kwargs)
        if cfg.beta_schedule != "linear":
            raise ModelError(f"Beta schedule {cfg.beta_schedule!r} is not supported (ToonCrafter uses 'linear').")
        if cfg.parameterization not in ("v", "eps"):
            raise ModelError(f"Parameterisation {cfg.parameterization!r} is not supported (ToonCrafter uses 'v').")
        if cfg.timesteps < 2:
            raise ModelError(f"A schedule needs at least 2 timesteps, not {cfg.timesteps}.")
        return cfg


def _zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Shift and scale √ᾱ so that ᾱ of the last step is exactly 0 while ᾱ_0 is unchanged."""
    root = np.sqrt(np.cumprod(1.0 - betas, axis=0))
    first, last = root[0].copy(), root[-1].copy()
    root = (root - last) * (first / (first - last))
    alphas_bar = root**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


def schedule_arrays(cfg: ScheduleConfig | None = None) -> dict[str, np.ndarray]:
    """The 13 buffers in float64 (before the float32 rounding of the stored buffers)."""
    cfg = cfg or ScheduleConfig()
    n = cfg.timesteps
    betas = np.linspace(cfg.linear_start**0.5, cfg.linear_end**0.5, n, dtype=np.float64) ** 2
    if cfg.rescale_betas_zero_snr:
        betas = _zero_terminal_snr(betas)
    alphas = 1.0 - betas
    acp = np.cumprod(alphas, axis=0)
    acp_prev = np.append(1.0, acp[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        one_minus = 1.0 - acp
        posterior_variance = betas * (1.0 - acp_prev) / one_minus
        out = {
            "betas": betas,
            "alphas_cumprod": acp,
            "alphas_cumprod_prev": acp_prev,
            "sqrt_alphas_cumprod": np.sqrt(acp),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(one_minus),
            "log_one_minus_alphas_cumprod": np.log(one_minus),
            # v-prediction never divides by √ᾱ (which is 0 at the last step): the original stores zeros.
            "sqrt_recip_alphas_cumprod": np.zeros(n) if cfg.parameterization == "v" else np.sqrt(1.0 / acp),
            "sqrt_recipm1_alphas_cumprod": np.zeros(n) if cfg.parameterization == "v" else np.sqrt(1.0 / acp - 1),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(acp_prev) / one_minus,
            "posterior_mean_coef2": (1.0 - acp_prev) * np.sqrt(alphas) / one_minus,
        }
    if cfg.use_dynamic_rescale:
        ramp = np.linspace(1.0, cfg.base_scale, cfg.turning_step)
        out["scale_arr"] = np.concatenate([ramp, np.full(n, cfg.base_scale)])
    else:
        out["scale_arr"] = np.ones(n)
    return {name: out[name] for name in BUFFER_NAMES}


def schedule_buffers(cfg: ScheduleConfig | None = None) -> dict[str, torch.Tensor]:
    """The 13 top-level buffers of the checkpoint, float32, in checkpoint order."""
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in schedule_arrays(cfg).items()}


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """Ascending timesteps of 'uniform_trailing' spacing: the last one is always T−1 (pure noise)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"The number of sampling steps must be a positive whole number, not {steps!r}.")
    if steps > num_train_timesteps:
        raise InputError(f"{steps} sampling steps is more than the model's {num_train_timesteps} timesteps.")
    c = num_train_timesteps / steps
    t = np.flip(np.round(np.arange(num_train_timesteps, 0, -c))).astype(np.int64) - 1
    if len(t) != steps or t[0] < 0 or len(np.unique(t)) != steps:
        usable = [s for s in range(max(1, steps - 5), steps + 6) if _spacing_ok(s, num_train_timesteps)]
        raise InputError(
            f"{steps} sampling steps cannot be spaced evenly over {num_train_timesteps} timesteps "
            f"('uniform_trailing' gives {len(t)} steps); choose another count, e.g. {usable[:4]}."
        )
    return t


def _spacing_ok(steps: int, n: int) -> bool:
    c = n / steps
    t = np.flip(np.round(np.arange(n, 0, -c))).astype(np.int64) - 1
    return len(t) == steps and t[0] >= 0 and len(np.unique(t)) == steps


def supported_step_counts(num_train_timesteps: int = 1000, maximum: int = 200) -> list[int]:
    """Step counts up to `maximum` that 'uniform_trailing' spacing can represent."""
    return [s for s in range(1, maximum + 1) if _spacing_ok(s, num_train_timesteps)]


@dataclass(frozen=True)
class DDIMTables:
    """Per-step scalars of the DDIM sampler, index i = 0..S−1 in ascending time order.

    The dtypes are those the original holds: `alphas`, `sqrt_one_minus_alphas`, `scale_arr`,
    `scale_arr_prev` float32; `alphas_prev` float64 (a numpy array there); `sigmas` float64.
    The sampler casts each scalar to float32 when it uses it, as the original does.
    `sqrt_alphas_cumprod` / `sqrt_one_minus_alphas_cumprod` are the 1000-entry float32 tables used to
    turn v into ε and x̂₀ (indexed by the timestep, not by i).
    """

    timesteps: torch.Tensor
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    sqrt_one_minus_alphas: torch.Tensor
    scale_arr: torch.Tensor
    scale_arr_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    eta: float
    use_dynamic_rescale: bool = True

    # What the original holds each table as (vectors/README: `<name>__dtype`).
    ORIGINAL_DTYPES = {
        "ddim_alphas": "torch.float32",
        "ddim_alphas_prev": "float64",
        "ddim_sigmas": "torch.float64",
        "ddim_sqrt_one_minus_alphas": "torch.float32",
        "ddim_scale_arr": "torch.float32",
        "ddim_scale_arr_prev": "torch.float32",
    }

    @property
    def steps(self) -> int:
        return int(self.timesteps.numel())

    def as_original(self) -> dict[str, torch.Tensor]:
        """The tables under the original's names (`ddim_alphas`, ...), plus `timesteps`."""
        return {
            "timesteps": self.timesteps,
            "ddim_alphas": self.alphas,
            "ddim_alphas_prev": self.alphas_prev,
            "ddim_sigmas": self.sigmas,
            "ddim_sqrt_one_minus_alphas": self.sqrt_one_minus_alphas,
            "ddim_scale_arr": self.scale_arr,
            "ddim_scale_arr_prev": self.scale_arr_prev,
        }


def ddim_tables(
    buffers: Mapping[str, torch.Tensor] | None,
    steps: int,
    eta: float,
    use_dynamic_rescale: bool = True,
) -> DDIMTables:
    """DDIM tables for `steps` steps with 'uniform_trailing' spacing, from the (float32) buffers.

    `buffers` may be the model's loaded buffers (the checkpoint's values win over computed ones);
    None computes the default schedule.
    """
    if buffers is None:
        buffers = schedule_buffers()
    if not 0.0 <= float(eta) <= 1.0:
        raise InputError(f"eta must lie between 0 and 1, not {eta}.")
    acp = buffers["alphas_cumprod"].detach().to("cpu", torch.float32)
    n = acp.numel()
    t = ddim_timesteps(steps, n)
    t_index = torch.from_numpy(t)
    alphas = acp[t_index]  # float32
    # The original builds the "previous" list in numpy from the float32 values -> float64.
    alphas_prev = torch.tensor([float(acp[0])] + acp[t_index[:-1]].tolist(), dtype=torch.float64)
    one_minus = (1.0 - alphas).double()  # formed in float32, then promoted (as in the original)
    ratio = alphas.double() / alphas_prev
    # Matches the stored tables within 3e-8 relative (one float32 ulp after the cast the loop makes).
    sigmas = float(eta) * torch.sqrt((1.0 - alphas_prev) / one_minus * (1.0 - ratio))
    scale = buffers["scale_arr"].detach().to("cpu", torch.float32)[t_index]
    return DDIMTables(
        timesteps=t_index,
        alphas=alphas,
        alphas_prev=alphas_prev,
        sigmas=sigmas,
        # numpy's float32 sqrt, as the original (torch's vectorised sqrt can differ by one ulp)
        sqrt_one_minus_alphas=torch.from_numpy(np.sqrt((1.0 - alphas).numpy())),
        scale_arr=scale,
        scale_arr_prev=torch.cat([scale[:1], scale[:-1]]),
        sqrt_alphas_cumprod=buffers["sqrt_alphas_cumprod"].detach().to("cpu", torch.float32),
        sqrt_one_minus_alphas_cumprod=buffers["sqrt_one_minus_alphas_cumprod"].detach().to("cpu", torch.float32),
        eta=float(eta),
        use_dynamic_rescale=use_dynamic_rescale,
    )
