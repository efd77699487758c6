"""The whole ToonCrafter model as one module whose state dict is the checkpoint's (spec §14).

Submodules carry the checkpoint prefixes: `model.diffusion_model` (UNet3D), `first_stage_model`
(autoencoder), `cond_stage_model` (text encoder), `embedder` (image encoder), `image_proj_model`
(Resampler), plus the 13 top-level schedule buffers. `build_model()` builds it on `meta` in well
under a second, so a checkpoint can be loaded with `load_state_dict(..., assign=True)` without ever
allocating throw-away weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoencoder import Autoencoder
from .clip import ImageEmbedder, TextEncoder
from .config import ToonCrafterConfig
from .resampler import Resampler
from .schedule import schedule_buffers
from .unet import UNet3D, keep_cpu_heap_small

# Component attribute -> checkpoint prefix.
COMPONENT_PREFIXES: dict[str, str] = {
    "unet": "model.diffusion_model.",
    "first_stage_model": "first_stage_model.",
    "cond_stage_model": "cond_stage_model.",
    "embedder": "embedder.",
    "image_proj_model": "image_proj_model.",
}
# Schedule buffers the sampler never reads (the checkpoint has them; a strict load needs them).
UNUSED_SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod_prev", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)


class DiffusionWrapper(nn.Module):
    """`model`: holds the UNet as `diffusion_model`; 'hybrid' conditioning concatenates the
    condition latent to the noisy latent along channels (spec §6)."""

    def __init__(self, unet: UNet3D) -> None:
        super().__init__()
        self.diffusion_model = unet

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        c_concat: torch.Tensor,
        context: torch.Tensor,
        fs: torch.Tensor | None = None,
        control: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x_in = torch.cat([x, c_concat.to(x.dtype)], dim=1)
        if control is None:
            return self.diffusion_model(x_in, timesteps, context, fs)
        return self.diffusion_model(x_in, timesteps, context, fs, control=control)


class ToonCrafterModel(nn.Module):
    """All the networks of ToonCrafter, named like the checkpoint."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    scale_arr: torch.Tensor

    def __init__(self, config: ToonCrafterConfig | None = None) -> None:
        super().__init__()
        cfg = config or ToonCrafterConfig.default()
        self.config = cfg
        for name, value in schedule_buffers(cfg.schedule).items():
            self.register_buffer(name, value)
        self.model = DiffusionWrapper(UNet3D(cfg.unet))
        self.first_stage_model = Autoencoder(cfg.autoencoder)
        self.cond_stage_model = TextEncoder(cfg.text_encoder)
        self.embedder = ImageEmbedder(cfg.vision_encoder)
        self.image_proj_model = Resampler(cfg.resampler)

    @property
    def unet(self) -> UNet3D:
        return self.model.diffusion_model

    def unused_keys(self) -> list[str]:
        """Checkpoint keys inference never reads (66.7 M parameters and 9 buffers for the 512
        model): a converted file may drop them."""
        keys = list(UNUSED_SCHEDULE_BUFFERS)
        for attribute, prefix in COMPONENT_PREFIXES.items():
            component = getattr(self, attribute)
            keys += [prefix + k for k in getattr(component, "unused_keys", list)()]
        return keys

    @torch.no_grad()
    def reset_schedule_buffers(self) -> None:
        """Give the schedule buffers their computed float32 values (after `to_empty`)."""
        for name, value in schedule_buffers(self.config.schedule).items():
            buffer = getattr(self, name)
            if buffer.device.type != "meta":
                setattr(self, name, value.to(buffer.device))


def build_model(
    config: ToonCrafterConfig | None = None,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.float32,
) -> ToonCrafterModel:
    """The ToonCrafter model (default: the 512 model) in eval mode.

    Always constructed on `meta` (no memory, no random initialisation). On `meta` it is ready for
    `load_state_dict(state, strict=True, assign=True)`. On a real device the parameters are
    allocated and zeroed (load weights next) and the schedule buffers get their computed values.
    Parameters take `dtype`; the schedule buffers stay float32 (the sampler's arithmetic).
    """
    with torch.device("meta"):
        model = ToonCrafterModel(config)
    model.eval().requires_grad_(False)
    if dtype != torch.float32:
        for module in (model.model, model.first_stage_model, model.cond_stage_model, model.embedder,
                       model.image_proj_model):
            module.to(dtype=dtype)
    device = torch.device(device)
    if device.type == "cpu":
        keep_cpu_heap_small()
    if device.type != "meta":
        model.to_empty(device=device)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()
        model.reset_schedule_buffers()
    return model
