"""The ToonCrafter UNet3D (spec §8): the v-prediction network of the 512 model.

`UNet3D(config)` has the original's parameter names, so its state dict is the checkpoint's
`model.diffusion_model.*` entries. Forward: (x (B, C, T, H, W), timesteps (B,), context
(B, N, ctx), fs (B,) or None) -> (B, out_channels, T, H, W).
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from ...core.errors import ModelError
from ._params import unwrap_params
from .unet_blocks import (
    Downsample,
    GroupNorm32,
    ResBlock,
    SpatialTransformer,
    Stage,
    TemporalTransformer,
    Upsample,
    to_frames_layout,
)


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of the UNet; the defaults are the ToonCrafter 512 model."""

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_head_channels: int = 64
    num_heads: int = -1  # used only when num_head_channels is -1
    transformer_depth: int = 1
    context_dim: int = 1024
    temporal_conv: bool = True
    temporal_attention: bool = True
    addition_attention: bool = True
    image_cross_attention: bool = True
    fs_condition: bool = True
    default_fs: int = 24
    temporal_length: int = 16
    dropout: float = 0.1  # training only
    # Fixed in the original code rather than in its config:
    text_tokens: int = 77
    image_tokens_per_frame: int = 16
    init_attn_heads: int = 8

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(heads, head width) of the transformers at a level of `channels` channels."""
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        return channels // self.num_head_channels, self.num_head_channels

    # Options of the original config that ToonCrafter sets one way; other values are refused
    # rather than silently computed differently.
    _REQUIRED = {
        "use_linear": True,
        "temporal_selfatt_only": True,
        "use_relative_position": False,
        "use_causal_attention": False,
        "use_scale_shift_norm": False,
        "resblock_updown": False,
        "conv_resample": True,
        "dims": 2,
        "image_cross_attention_scale_learnable": False,
        "tempspatial_aware": False,
    }
    _IGNORED = {"use_checkpoint", "use_fp16", "num_classes", "fs_condition_type"}

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> UNetConfig:
        """From the original YAML `unet_config.params` mapping (vectors/README §2), or the whole
        `unet_config` block ({target, params})."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in unwrap_params(params).items():
            if name in cls._REQUIRED:
                if value != cls._REQUIRED[name]:
                    raise ModelError(f"UNet option {name}={value!r} is not supported (ToonCrafter uses {cls._REQUIRED[name]!r}).")
            elif name in cls._IGNORED:
                continue
            elif name in known:
                values[name] = tuple(value) if isinstance(value, list) else value
            else:
                raise ModelError(f"Unknown UNet option '{name}' in the model configuration.")
        return cls(**values)

    @classmethod
    def reduced(cls) -> UNetConfig:
        """The reduced UNet of the reference vectors (model_channels 32, context 64)."""
        return cls.from_params(REDUCED_UNET_PARAMS)


# `unet_config.params` of the reduced model of the reference vectors (vectors/README §2).
REDUCED_UNET_PARAMS: dict[str, Any] = {
    "in_channels": 8, "out_channels": 4, "model_channels": 32, "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4], "dropout": 0.1, "num_head_channels": 16,
    "transformer_depth": 1, "context_dim": 64, "use_linear": True, "use_checkpoint": False,
    "temporal_conv": True, "temporal_attention": True, "temporal_selfatt_only": True,
    "use_relative_position": False, "use_causal_attention": False, "temporal_length": 16,
    "addition_attention": True, "image_cross_attention": True, "default_fs": 24, "fs_condition": True,
}


log = logging.getLogger(__name__)
_heap_tuned = False


def keep_cpu_heap_small() -> None:
    """Make freed activations go back to the system on Linux (glibc), once per process.

    glibc serves blocks below its mmap threshold from the heap, and raises that threshold (up to
    32 MB) whenever a mapped block is freed; most UNet activations then live in the heap, where
    fragmentation grows the resident size by several hundred MB over one forward. A fixed 4 MiB
    threshold gives each activation its own mapping, released when the tensor is freed.
    """
    global _heap_tuned
    if _heap_tuned or not sys.platform.startswith("linux"):
        return
    _heap_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3
        if libc.mallopt(m_mmap_threshold, 4 << 20) == 1:
            log.debug("glibc mmap threshold fixed at 4 MiB for CPU inference")
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def timestep_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos, sin] of integer timesteps or frame rates, computed in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def _add_control(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """x + residual keeping x's memory layout (in place at inference): a scale-0 control then gives
    the unguided numbers bit for bit, since every later kernel sees the same layout."""
    residual = residual.to(device=x.device, dtype=x.dtype)
    if torch.is_grad_enabled():
        return x + residual
    return x.add_(residual)


class UNet3D(nn.Module):
    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        mc, emb_dim = cfg.model_channels, cfg.time_embed_dim

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.fs_condition:
            self.fps_embedding = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attention_layers(ch: int) -> list[nn.Module]:
            heads, dim_head = cfg.heads_for(ch)
            layers: list[nn.Module] = [
                SpatialTransformer(
                    ch, heads, dim_head, cfg.transformer_depth, cfg.context_dim,
                    image_tokens=cfg.image_cross_attention, text_tokens=cfg.text_tokens,
                )
            ]
            if cfg.temporal_attention:
                layers.append(TemporalTransformer(ch, heads, dim_head, cfg.transformer_depth))
            return layers

        def res_block(ch_in: int, ch_out: int) -> ResBlock:
            return ResBlock(ch_in, emb_dim, ch_out, temporal_conv=cfg.temporal_conv)

        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        skip_channels = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers += attention_layers(ch)
                self.input_blocks.append(Stage(layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch)]))
                skip_channels.append(ch)
                ds *= 2

        if cfg.addition_attention:
            self.init_attn = Stage(
                [TemporalTransformer(mc, cfg.init_attn_heads, cfg.num_head_channels, cfg.transformer_depth,
                                     conv_projections=True)]
            )

        middle: list[nn.Module] = [res_block(ch, ch)]
        middle += attention_layers(ch)
        middle.append(res_block(ch, ch))
        self.middle_block = Stage(middle)

        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res_block(ch + skip_channels.pop(), mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers += attention_layers(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Stage(layers))

        self.out = nn.Sequential(GroupNorm32(32, ch, eps=1e-5), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def frame_context(self, context: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, N, ctx) -> (B·T, N', ctx): per-frame image tokens when N == 77 + 16·T (trap 7),
        otherwise the whole context for every frame."""
        cfg = self.config
        b, n, c = context.shape
        if n == cfg.text_tokens + cfg.image_tokens_per_frame * frames:
            text = context[:, : cfg.text_tokens].repeat_interleave(frames, dim=0)
            image = context[:, cfg.text_tokens :].reshape(b * frames, cfg.image_tokens_per_frame, c)
            return torch.cat([text, image], dim=1)
        return context.repeat_interleave(frames, dim=0)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        fs: torch.Tensor | None = None,
        control: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`control`: the sketch encoder's 13 scaled residuals (sketch-spec §1.6), frames as rows:
        residual i (i < 12) is added to skip tensor i as output block 11 − i takes it, the last one
        to the middle block's output; h between output blocks is never touched."""
        cfg = self.config
        b, _, t, _, _ = x.shape
        dtype = self.out[2].weight.dtype
        if x.device.type == "cpu":
            keep_cpu_heap_small()
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels).to(dtype))
        if cfg.fs_condition:
            if fs is None:
                fs = torch.full((b,), cfg.default_fs, dtype=torch.long, device=x.device)
            emb = emb + self.fps_embedding(timestep_embedding(fs, cfg.model_channels).to(dtype))
        emb = emb.repeat_interleave(t, dim=0)
        context = self.frame_context(context.to(dtype), t)

        # (B, C, T, H, W) -> frames (B·T, C, H, W), row b·T + f, stored channels-last.
        h = to_frames_layout(x.to(dtype).transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:]))
        skips: list[torch.Tensor] = []
        for index, stage in enumerate(self.input_blocks):
            h = stage(h, emb, context, b)
            if index == 0 and cfg.addition_attention:
                h = self.init_attn(h, emb, context, b)
            skips.append(h)
        h = self.middle_block(h, emb, context, b)
        if control is not None:
            if len(control) != len(skips) + 1:
                raise ModelError(f"The UNet takes {len(skips) + 1} control residuals, not {len(control)}.")
            h = _add_control(h, control[-1])
        for stage in self.output_blocks:
            skip = skips.pop()
            if control is not None:  # the skip, after the temporal init_attn for skip 0
                skip = _add_control(skip, control[len(skips)])
            h = stage(h, emb, context, b, skip=skip)  # input = concat([h, skip]) along channels
        y = self.out(h)
        del h
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2).contiguous().to(x.dtype)
