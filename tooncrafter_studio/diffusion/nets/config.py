"""The typed configuration of the whole ToonCrafter model: the 512 model by default, or read from a
dict shaped like the original YAML `model.params` (spec §14; vectors/README §2 for the reduced one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import ModelError
from ._params import unwrap_params
from .autoencoder import AutoencoderConfig
from .clip import TC_TINY, TextEncoderConfig, VisionEncoderConfig
from .resampler import ResamplerConfig
from .schedule import ScheduleConfig
from .unet import UNetConfig

# Top-level options of the original LatentVisualDiffusion that only concern training, logging or
# data loading; read and ignored.
_IGNORED_TOP_LEVEL = {
    "num_timesteps_cond", "first_stage_key", "cond_stage_key", "cond_stage_trainable", "use_ema",
    "fps_condition_type", "loop_video", "log_every_t", "monitor", "image_proj_model_trainable",
    "scheduler_config", "empty_params_only", "ckpt_path", "ignore_keys", "load_only_unet",
    "cond_stage_forward", "logdir", "rand_cond_frame", "en_and_decode_n_samples_a_time",
    "unet_trainable", "encoder_type", "interp_mode", "noise_strength", "first_stage_trainable",
}
# Options this implementation computes one way only (the ToonCrafter 512 values).
_REQUIRED_TOP_LEVEL = {"conditioning_key": "hybrid", "scale_by_std": False, "perframe_ae": True}
_COMPONENT_BLOCKS = {
    "unet_config", "first_stage_config", "cond_stage_config", "img_cond_stage_config", "image_proj_stage_config",
}


@dataclass(frozen=True)
class ToonCrafterConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(layer="penultimate"))
    vision_encoder: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    latent_channels: int = 4
    latent_size: tuple[int, int] = (40, 64)  # latent H x W (pixels / 8): 320 x 512
    uncond_type: str = "empty_seq"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def frames(self) -> int:
        return self.unet.temporal_length

    @property
    def scale_factor(self) -> float:
        return self.schedule.scale_factor

    @property
    def context_tokens(self) -> int:
        """Text tokens + per-frame image tokens: 77 + 16·16 = 333 for the 512 model."""
        return self.unet.text_tokens + self.resampler.total_queries

    def validate(self) -> None:
        """The components must fit together (widths and token counts); a clear error otherwise."""
        u, r = self.unet, self.resampler
        checks = [
            (u.context_dim == self.text_encoder.arch.text_width,
             f"UNet context_dim {u.context_dim} != text encoder width {self.text_encoder.arch.text_width}"),
            (u.context_dim == r.output_dim, f"UNet context_dim {u.context_dim} != Resampler output_dim {r.output_dim}"),
            (r.embedding_dim == self.vision_encoder.arch.vision_width,
             f"Resampler embedding_dim {r.embedding_dim} != image encoder width {self.vision_encoder.arch.vision_width}"),
            (r.num_queries == u.image_tokens_per_frame,
             f"Resampler num_queries {r.num_queries} != {u.image_tokens_per_frame} image tokens per frame"),
            (r.video_length == u.temporal_length,
             f"Resampler video_length {r.video_length} != UNet temporal_length {u.temporal_length}"),
            (u.in_channels == 2 * self.latent_channels,
             f"UNet in_channels {u.in_channels} != 2 x {self.latent_channels} latent channels (hybrid conditioning)"),
            (u.out_channels == self.latent_channels == self.autoencoder.embed_dim,
             f"UNet out_channels {u.out_channels}, latent channels {self.latent_channels} and autoencoder "
             f"embed_dim {self.autoencoder.embed_dim} must agree"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ModelError("Inconsistent model configuration: " + "; ".join(problems) + ".")

    @classmethod
    def default(cls) -> ToonCrafterConfig:
        """The ToonCrafter 512 model (configs/inference_512_v1.0.yaml)."""
        return cls()

    @classmethod
    def from_original_params(cls, params: Mapping[str, Any]) -> ToonCrafterConfig:
        """From the original YAML: the `model.params` mapping, the `model` block ({target, params}) or
        the whole file ({model: {...}})."""
        if "model" in params and isinstance(params["model"], Mapping):
            params = params["model"]
        values = unwrap_params(params)
        for name, expected in _REQUIRED_TOP_LEVEL.items():
            if name in values and values[name] != expected:
                raise ModelError(f"Model option {name}={values[name]!r} is not supported (ToonCrafter uses {expected!r}).")
        schedule_keys = set(ScheduleConfig.__dataclass_fields__)
        known = _IGNORED_TOP_LEVEL | _COMPONENT_BLOCKS | set(_REQUIRED_TOP_LEVEL) | schedule_keys
        known |= {"channels", "image_size", "uncond_type"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"Unknown model option(s) {unknown} in the model configuration.")
        missing = sorted(_COMPONENT_BLOCKS - set(values))
        if missing:
            raise ModelError(f"The model configuration lacks {', '.join(missing)}.")
        size = values.get("image_size", (40, 64))
        if isinstance(size, int):
            size = (size, size)
        return cls(
            unet=UNetConfig.from_params(values["unet_config"]),
            autoencoder=AutoencoderConfig.from_params(values["first_stage_config"]),
            text_encoder=TextEncoderConfig.from_params(values["cond_stage_config"]),
            vision_encoder=VisionEncoderConfig.from_params(values["img_cond_stage_config"]),
            resampler=ResamplerConfig.from_params(values["image_proj_stage_config"]),
            schedule=ScheduleConfig.from_params(values),
            latent_channels=int(values.get("channels", 4)),
            latent_size=(int(size[0]), int(size[1])),
            uncond_type=str(values.get("uncond_type", "empty_seq")),
        )

    @classmethod
    def reduced(cls) -> ToonCrafterConfig:
        """The reduced model of the reference vectors (vectors/README §2): same keys, small shapes."""
        return cls.from_original_params(REDUCED_PARAMS)


# The reduced model's `model.params` exactly as vectors/README §2 gives it (component targets kept).
REDUCED_PARAMS: dict[str, Any] = {
    "rescale_betas_zero_snr": True, "parameterization": "v", "linear_start": 0.00085, "linear_end": 0.012,
    "num_timesteps_cond": 1, "timesteps": 1000, "conditioning_key": "hybrid", "image_size": [40, 64],
    "channels": 4, "scale_by_std": False, "scale_factor": 0.18215, "use_ema": False,
    "uncond_type": "empty_seq", "use_dynamic_rescale": True, "base_scale": 0.7, "fps_condition_type": "fps",
    "perframe_ae": True, "loop_video": True,
    "unet_config": {
        "target": "lvdm.modules.networks.openaimodel3d.UNetModel",
        "params": {
            "in_channels": 8, "out_channels": 4, "model_channels": 32, "attention_resolutions": [4, 2, 1],
            "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4], "dropout": 0.1, "num_head_channels": 16,
            "transformer_depth": 1, "context_dim": 64, "use_linear": True, "use_checkpoint": False,
            "temporal_conv": True, "temporal_attention": True, "temporal_selfatt_only": True,
            "use_relative_position": False, "use_causal_attention": False, "temporal_length": 16,
            "addition_attention": True, "image_cross_attention": True, "default_fs": 24, "fs_condition": True,
        },
    },
    "first_stage_config": {
        "target": "lvdm.models.autoencoder.AutoencoderKL_Dualref",
        "params": {
            "embed_dim": 4,
            "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                         "ch": 32, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                         "dropout": 0.0},
            "lossconfig": {"target": "torch.nn.Identity"},
        },
    },
    "cond_stage_config": {
        "target": "lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
        "params": {"freeze": True, "layer": "penultimate", "arch": TC_TINY.name, "version": None},
    },
    "img_cond_stage_config": {
        "target": "lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2",
        "params": {"freeze": True, "arch": TC_TINY.name, "version": None},
    },
    "image_proj_stage_config": {
        "target": "lvdm.modules.encoders.resampler.Resampler",
        "params": {"dim": 64, "depth": 2, "dim_head": 16, "heads": 3, "num_queries": 16, "embedding_dim": 64,
                   "output_dim": 64, "ff_mult": 4, "video_length": 16},
    },
}
