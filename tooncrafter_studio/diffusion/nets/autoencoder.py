"""The ToonCrafter autoencoder (spec §7, §11): `AutoencoderKL_Dualref` computed our way.

Config first (composed by the model container); the modules follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._params import as_tuple, check_options, unwrap_params
from .ae_blocks import (
    AE3DConv,
    AttnBlock,
    Combiner,
    Downsample,
    FusionAttention,
    ResnetBlock,
    Upsample,
    VideoResBlock,
    vae_norm,
)
from .ae_lean import decode_lean


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyper-parameters of the autoencoder; the defaults are the ToonCrafter 512 model."""

    embed_dim: int = 4
    z_channels: int = 4
    double_z: bool = True
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0  # training only
    resolution: int = 256  # informational; the networks are fully convolutional
    # Fixed in the original code rather than in its config:
    fusion_heads: int = 8
    fusion_head_dim: int = 64
    video_kernel_size: int = 3
    chunk_frames: int = 16  # perframe_ae decodes in chunks of the model's temporal length

    _REQUIRED_DD = {"double_z": True, "attn_resolutions": ()}
    _IGNORED = {"monitor", "lossconfig", "ckpt_path", "ignore_keys", "image_key", "colorize_nlabels",
                "input_dim", "use_checkpoint", "test", "logdir", "img_video_joint_mode", "ddconfig"}

    @property
    def level_widths(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

    @classmethod
    def reduced(cls) -> AutoencoderConfig:
        """The reduced autoencoder of the reference vectors (vectors/README §2): ch 32."""
        return cls(ch=32)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> AutoencoderConfig:
        """From the original YAML `first_stage_config.params` mapping (embed_dim + ddconfig)."""
        outer = unwrap_params(params)
        dd = {k: as_tuple(v) for k, v in dict(outer.get("ddconfig") or {}).items()}
        check_options("Autoencoder", dd, cls._REQUIRED_DD)
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in dd.items() if k in known}
        if "embed_dim" in outer:
            values["embed_dim"] = outer["embed_dim"]
        for name, value in outer.items():
            if name in known and name not in values:
                values[name] = as_tuple(value)
        return cls(**values)


# --------------------------------------------------------------------------------------------------
# Networks

LATENT_SCALE = 0.18215  # the diffusion model's scale_factor (its config, not the autoencoder's)
FUSION_LEVELS = (2, 3)  # decoder levels whose references are fused by cross-attention (others: Combiner)


class _Level(nn.Module):
    """Container whose attribute names give the checkpoint's `down.<i>.block.<j>` / `.downsample` keys."""


class _Mid(nn.Module):
    def __init__(self, block_1: nn.Module, attn_1: nn.Module, block_2: nn.Module) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = block_1, attn_1, block_2


class Encoder(nn.Module):
    """Per-frame 2-D encoder. Returns the moments (2·z_channels maps) and the decoder's five
    references: the output of each level's last ResnetBlock, then the conv_in output (spec §7)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        widths = cfg.level_widths
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = cfg.ch
        for level, width in enumerate(widths):
            stage = _Level()
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, width))
                block_in = width
            stage.block = nn.ModuleList(blocks)
            if level != len(widths) - 1:
                stage.downsample = Downsample(block_in)
            self.down.append(stage)
        self.mid = _Mid(ResnetBlock(block_in, block_in), AttnBlock(block_in), ResnetBlock(block_in, block_in))
        self.norm_out = vae_norm(block_in)
        out = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.conv_out = nn.Conv2d(block_in, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.conv_in(x)
        first = h
        hidden: list[torch.Tensor] = []
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            hidden.append(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h, hidden + [first]


class VideoDecoder(nn.Module):
    """The dual-reference video decoder (spec §11.2-11.3). forward(z (B·T, 4, h, w), references,
    frames) -> (B·T, 3, H, W); the chunk's frames must all belong to one video (B·T = B·frames)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        widths = cfg.level_widths
        k = cfg.video_kernel_size
        block_in = widths[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(VideoResBlock(block_in, block_in, k), AttnBlock(block_in),
                        VideoResBlock(block_in, block_in, k))
        up: list[nn.Module] = [nn.Module()] * len(widths)
        for level in reversed(range(len(widths))):
            stage = _Level()
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(VideoResBlock(block_in, widths[level], k))
                block_in = widths[level]
            stage.block = nn.ModuleList(blocks)
            if level != 0:
                stage.upsample = Upsample(block_in)
            up[level] = stage
        self.up = nn.ModuleList(up)
        refinement: list[nn.Module] = []
        for level, width in enumerate(widths):
            if level in FUSION_LEVELS:
                refinement.append(FusionAttention(width, cfg.fusion_heads, cfg.fusion_head_dim))
            else:
                refinement.append(Combiner(width))
        refinement.append(Combiner(block_in))
        self.attn_refinement = nn.ModuleList(refinement)
        self.norm_out = vae_norm(block_in)
        self.conv_out = AE3DConv(block_in, cfg.out_ch, k)

    def forward(self, z: torch.Tensor, references: list[torch.Tensor], frames: int) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_1(h, frames)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h, frames)
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for block in stage.block:
                h = block(h, frames)
            h = self.attn_refinement[level](h, references[level], frames)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        h = F.silu(self.norm_out(h))
        h = self.attn_refinement[len(self.up)](h, references[len(self.up)], frames)
        return self.conv_out(h, frames)


class Autoencoder(nn.Module):
    """`first_stage_model`: encoder + quant_conv for encoding, the dual-reference video decoder for
    decoding. `post_quant_conv` exists only so the checkpoint loads strictly: the pipeline's decode
    path never applies it (trap 2)."""

    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or AutoencoderConfig()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = VideoDecoder(cfg)
        moments = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.quant_conv = nn.Conv2d(moments, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        # Piece size of the lean decode (values per piece); smaller pieces, lower peak memory.
        self.lean_piece_elements = 1 << 24

    def unused_keys(self) -> list[str]:
        """State-dict keys (relative to `first_stage_model.`) that inference never reads."""
        return ["post_quant_conv.weight", "post_quant_conv.bias"]

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """frames (N, 3, H, W) in [-1, 1] -> (mean, logvar clamped to [-30, 20], hidden states per frame)."""
        h, hidden = self.encoder(frames)
        mean, logvar = self.quant_conv(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0), hidden

    @staticmethod
    def sample_posterior(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """mean + exp(logvar/2)·noise; `noise` is injected so runs can replay a stored draw (trap 1)."""
        return mean + torch.exp(0.5 * logvar) * noise.to(device=mean.device, dtype=mean.dtype)

    # -- decoding ------------------------------------------------------------------------------

    def decode_chunk(self, z: torch.Tensor, references: list[torch.Tensor], lean: bool = False) -> torch.Tensor:
        """One decoder call: z (B, 4, T, h, w) unscaled latent, references (B, C, 2, h_l, w_l)
        -> (B, 3, T, H, W). Temporal layers see exactly these T frames (zero temporal padding).
        `lean` computes the same numbers in pieces with far fewer full-size temporaries (ae_lean)."""
        b, c, t, h, w = z.shape
        frames = z.transpose(1, 2).reshape(b * t, c, h, w)
        if lean and b == 1:
            out = decode_lean(self.decoder, frames, references, t, self.lean_piece_elements)
        else:
            out = self.decoder(frames, references, t)
        return out.view(b, t, *out.shape[1:]).transpose(1, 2)

    def decode(self, z: torch.Tensor, references: list[torch.Tensor], chunk_frames: int | None = None,
               lean: bool = False) -> torch.Tensor:
        """Decode an unscaled latent video (B, 4, T, h, w) in chunks of `chunk_frames` frames per video
        (the original's perframe_ae path; the chunk length changes the numbers)."""
        chunk = chunk_frames or self.config.chunk_frames
        outputs = []
        for b in range(z.shape[0]):
            refs = [r[b : b + 1] for r in references]
            pieces = [self.decode_chunk(z[b : b + 1, :, s : s + chunk], refs, lean)
                      for s in range(0, z.shape[2], chunk)]
            outputs.append(torch.cat(pieces, dim=2))
        return torch.cat(outputs, dim=0)


# --------------------------------------------------------------------------------------------------
# The pipeline's use of the autoencoder (spec §1 steps 6-7, §11.4)

START_END_ROWS = (0, -1)


def video_references(hidden: list[torch.Tensor], frames: int) -> list[torch.Tensor]:
    """Per-frame encoder maps (B·T, C, h, w) -> decoder references (B, C, 2, h, w) of the first and
    last frame of each video."""
    refs = []
    for h in hidden:
        bt, c, hh, ww = h.shape
        video = h.view(bt // frames, frames, c, hh, ww)
        refs.append(torch.stack([video[:, 0], video[:, -1]], dim=2))
    return refs


def encode_video(
    autoencoder: Autoencoder, video: torch.Tensor, noise: torch.Tensor, scale_factor: float = LATENT_SCALE
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The scripts' encode: video (B, 3, T, H, W) in [-1, 1], noise (B·T, 4, h, w) -> (scaled latent
    z (B, 4, T, h, w), decoder references)."""
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    mean, logvar, hidden = autoencoder.encode(frames)
    z = scale_factor * autoencoder.sample_posterior(mean, logvar, noise)
    z = z.view(b, t, *z.shape[1:]).transpose(1, 2)
    return z, video_references(hidden, t)


def encode_pair(
    autoencoder: Autoencoder,
    start: torch.Tensor,
    end: torch.Tensor,
    noise: torch.Tensor,
    scale_factor: float = LATENT_SCALE,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Encode only the two distinct frames (the 2-D encoder is per frame, so frames 0 and 15 of the
    repeated 16-frame video give the same numbers). start/end (B, 3, H, W); noise (B·T, 4, h, w) as
    the original draws it for all T frames, of which rows 0 and T-1 of each video are used.
    Returns (z_start, z_end) each (B, 4, h, w) scaled, and the decoder references."""
    b = start.shape[0]
    t = noise.shape[0] // b
    noise = noise.view(b, t, *noise.shape[1:])
    mean, logvar, hidden = autoencoder.encode(torch.cat([start, end], dim=0))
    z = scale_factor * autoencoder.sample_posterior(mean, logvar, torch.cat([noise[:, 0], noise[:, -1]], dim=0))
    refs = [torch.stack([h[:b], h[b:]], dim=2) for h in hidden]
    return z[:b], z[b:], refs


def concat_condition(z_start: torch.Tensor, z_end: torch.Tensor, frames: int = 16) -> torch.Tensor:
    """c_concat for interpolation: zeros (B, 4, T, h, w) with frame 0 = z_start and frame T-1 = z_end."""
    b, c, h, w = z_start.shape
    out = z_start.new_zeros(b, c, frames, h, w)
    out[:, :, 0] = z_start
    out[:, :, -1] = z_end
    return out


def splice_indices(frames: int = 16) -> list[int]:
    """Latent frames of the second decode pass: all but the second and the second-to-last."""
    return [0, *range(2, frames - 2), frames - 1]


def decode_interpolation(
    autoencoder: Autoencoder,
    latent: torch.Tensor,
    references: list[torch.Tensor],
    scale_factor: float = LATENT_SCALE,
    lean: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two-pass decode and splice (§11.4): latent (B, 4, 16, h, w) in scaled space ->
    (final, decode16, decode14) as (B, 3, T, H, W). Frames 7 and 8 of the final video come from the
    14-frame pass. `lean`: the bounded-memory decode (same numbers, see ae_lean)."""
    z = latent / scale_factor
    t = z.shape[2]
    decode_all = autoencoder.decode(z, references, lean=lean)
    middle = splice_indices(t)
    decode_middle = autoencoder.decode(z[:, :, middle], references, lean=lean)
    final = decode_all.clone()
    mid = t // 2
    final[:, :, mid - 1] = decode_middle[:, :, mid - 2]
    final[:, :, mid] = decode_middle[:, :, mid - 1]
    return final, decode_all, decode_middle
