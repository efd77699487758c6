"""The sketch encoder: a frame-wise ControlNet with a 1-channel hint (sketch-spec §1.2, §1.6).

It is the SD-2.1 ControlNet layout: a copy of a UNet encoder (input blocks and middle block, no
temporal layers, no fps embedding) that reads the noisy latent (4 channels, not the UNet's 8-channel
concat input) and a line-art hint at pixel resolution, and returns 13 residuals through 1×1 "zero"
convolutions. `SketchEncoder(config)` has the checkpoint's parameter names (no prefix), so its state
dict is `sketch_encoder.ckpt` key for key.

Forward, all per frame (rows b·T + f): `x` (N, 4, h, w), `hint` (N, 1, 8h, 8w) in [0, 1] (ink = 1,
a blank page = 0), `timesteps` (N,) or (B,) broadcast, `context` (N, L, D). Returns the 13
unscaled residuals: 12 for the UNet's skip tensors, then one for its middle-block output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from ...core.errors import ModelError
from ._params import unwrap_params
from .unet import keep_cpu_heap_small, timestep_embedding
from .unet_blocks import Downsample, ResBlock, SpatialTransformer, Stage, to_frames_layout

SKETCH_ENCODER_NAME = "ToonCrafter sketch encoder"
# The hint block's widths are fixed by the class; only its last (zero) conv follows model_channels.
HINT_WIDTHS = (16, 16, 32, 32, 96, 96, 256)
HINT_STRIDES = (1, 1, 2, 1, 2, 1, 2)
CONTEXT_MODES = ("text", "all")  # spec A1: first 77 tokens (lvdm) or all 333 (ldm)


@dataclass(frozen=True)
class SketchEncoderConfig:
    """Hyper-parameters; the defaults are the published encoder (the fork's configs/cldm_v21.yaml)."""

    in_channels: int = 4
    hint_channels: int = 1
    model_channels: int = 320
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    text_tokens: int = 77

    _REQUIRED = {"use_spatial_transformer": True, "use_linear_in_transformer": True, "legacy": False,
                 "use_scale_shift_norm": False, "resblock_updown": False, "dims": 2}
    _IGNORED = {"use_checkpoint", "image_size", "use_fp16", "dropout", "num_heads", "conv_resample"}

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SketchEncoderConfig:
        """From a YAML `control_stage_config.params` mapping or a {target, params} block."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in unwrap_params(params).items():
            if name in cls._REQUIRED:
                if value != cls._REQUIRED[name]:
                    raise ModelError(f"Sketch encoder option {name}={value!r} is not supported.")
            elif name in cls._IGNORED:
                continue
            elif name in known:
                values[name] = tuple(value) if isinstance(value, list) else value
            else:
                raise ModelError(f"Unknown sketch encoder option '{name}'.")
        return cls(**values)

    @classmethod
    def reduced(cls) -> SketchEncoderConfig:
        """The reduced encoder of the sketch vectors (widths of the reduced UNet)."""
        return cls(model_channels=32, num_head_channels=16, context_dim=64)

    @classmethod
    def for_unet(cls, unet: Any) -> SketchEncoderConfig:
        """The encoder that fits a UNet (a UNetConfig): its widths, levels, heads and context; the
        published encoder for the 512 model."""
        return cls(model_channels=unet.model_channels, attention_resolutions=tuple(unet.attention_resolutions),
                   num_res_blocks=unet.num_res_blocks, channel_mult=tuple(unet.channel_mult),
                   num_head_channels=unet.num_head_channels, transformer_depth=unet.transformer_depth,
                   context_dim=unet.context_dim, text_tokens=unet.text_tokens)

    def residual_channels(self) -> list[int]:
        """Channels of the 13 residuals (the UNet skips' widths, then the middle block's)."""
        mc = self.model_channels
        out, ch = [mc], mc
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                ch = mult * mc
                out.append(ch)
            if level != len(self.channel_mult) - 1:
                out.append(ch)
        return out + [ch]


def _zero_conv(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1))


class SketchEncoder(nn.Module):
    def __init__(self, config: SketchEncoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or SketchEncoderConfig()
        self.config = cfg
        mc, emb_dim = cfg.model_channels, cfg.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attention(ch: int) -> SpatialTransformer:
            heads = ch // cfg.num_head_channels
            return SpatialTransformer(ch, heads, cfg.num_head_channels, cfg.transformer_depth, cfg.context_dim,
                                      image_tokens=False, text_tokens=cfg.text_tokens)

        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        self.zero_convs = nn.ModuleList([_zero_conv(mc)])
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc, temporal_conv=False)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(Stage(layers))
                self.zero_convs.append(_zero_conv(ch))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch)]))
                self.zero_convs.append(_zero_conv(ch))
                ds *= 2

        hint: list[nn.Module] = []
        width = cfg.hint_channels
        for out, stride in zip(HINT_WIDTHS, HINT_STRIDES):
            hint += [nn.Conv2d(width, out, 3, stride=stride, padding=1), nn.SiLU()]
            width = out
        hint.append(nn.Conv2d(width, mc, 3, padding=1))
        self.input_hint_block = nn.Sequential(*hint)

        self.middle_block = Stage([ResBlock(ch, emb_dim, ch, temporal_conv=False), attention(ch),
                                   ResBlock(ch, emb_dim, ch, temporal_conv=False)])
        self.middle_block_out = _zero_conv(ch)

    def frame_context(self, context: torch.Tensor, frames: int, mode: str = "text") -> torch.Tensor:
        """(B, L, D) -> (B·T, L', D), batch-major (row b·T + f, like the latent's frames): `text` keeps
        the first 77 tokens (kijai's lvdm attention), `all` every token in one softmax (the fork)."""
        if mode not in CONTEXT_MODES:
            raise ModelError(f"Unknown sketch context '{mode}': use one of {', '.join(CONTEXT_MODES)}.")
        if mode == "text":
            context = context[:, : self.config.text_tokens]
        return context.repeat_interleave(frames, dim=0)

    def forward(self, x: torch.Tensor, hint: torch.Tensor, timesteps: torch.Tensor,
                context: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[0]
        if hint.shape[0] != n or context.shape[0] != n:
            raise ModelError(f"Sketch encoder inputs disagree: {n} latent frames, {hint.shape[0]} hint frames, "
                             f"{context.shape[0]} context rows.")
        expected = (x.shape[2] * 8, x.shape[3] * 8)
        if tuple(hint.shape[2:]) != expected:
            raise ModelError(f"The sketch hint is {hint.shape[3]}x{hint.shape[2]} but the latent needs "
                             f"{expected[1]}x{expected[0]} (8x the latent).")
        dtype = self.middle_block_out[0].weight.dtype
        if x.device.type == "cpu":
            keep_cpu_heap_small()
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        if emb.shape[0] != n:  # (B,) timesteps: one row per batch entry, broadcast over its frames
            emb = emb.repeat_interleave(n // emb.shape[0], dim=0)
        context = context.to(dtype)
        guide = self.input_hint_block(hint.to(dtype))
        h = to_frames_layout(self.input_blocks[0](x.to(dtype), emb, context, n) + guide)
        del guide
        residuals = [self.zero_convs[0](h)]
        for stage, zero in zip(self.input_blocks[1:], self.zero_convs[1:]):
            h = stage(h, emb, context, n)
            residuals.append(zero(h))
        h = self.middle_block(h, emb, context, n)
        residuals.append(self.middle_block_out(h))
        return residuals


def build_sketch_encoder(config: SketchEncoderConfig | None = None, device: torch.device | str = "meta",
                         dtype: torch.dtype = torch.float32) -> SketchEncoder:
    """The encoder on `meta` (ready for an assign-load) or allocated and zeroed on `device`."""
    with torch.device("meta"):
        encoder = SketchEncoder(config)
    encoder.eval().requires_grad_(False)
    if dtype != torch.float32:
        encoder.to(dtype=dtype)
    if torch.device(device).type != "meta":
        encoder.to_empty(device=device)
        with torch.no_grad():
            for parameter in encoder.parameters():
                parameter.zero_()
    return encoder
