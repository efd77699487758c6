"""The image-token Resampler (spec §5): 257 CLIP tokens -> 16 frames x 16 context tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from ...core.errors import ModelError
from ._params import check_options, unwrap_params
from .attention import attention, merge_heads, split_heads


@dataclass(frozen=True)
class ResamplerConfig:
    """Hyper-parameters of the Resampler; the defaults are the ToonCrafter 512 model."""

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int = 16

    _REQUIRED = {"apply_pos_emb": False, "num_latents_mean_pooled": 0}
    _IGNORED = {"max_seq_len"}

    @property
    def total_queries(self) -> int:
        return self.num_queries * self.video_length

    @classmethod
    def reduced(cls) -> ResamplerConfig:
        """The reduced Resampler of the reference vectors (vectors/README §2)."""
        return cls(dim=64, depth=2, dim_head=16, heads=3, num_queries=16, embedding_dim=64, output_dim=64)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ResamplerConfig:
        """From the original YAML `image_proj_stage_config.params` mapping."""
        values = unwrap_params(params)
        check_options("Resampler", values, cls._REQUIRED)
        known = {f.name for f in fields(cls)}
        kept: dict[str, Any] = {}
        for name, value in values.items():
            if name in known:
                kept[name] = value
            elif name not in cls._REQUIRED and name not in cls._IGNORED:
                raise ModelError(f"Unknown Resampler option '{name}' in the model configuration.")
        return cls(**kept)


class PerceiverAttention(nn.Module):
    """Learned queries attend to [image tokens ; queries] (spec §5). Names: norm1/norm2/to_q/to_kv/to_out."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        latents = self.norm2(latents)
        q = split_heads(self.to_q(latents), self.heads)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        # The original scales q and k by d^-1/4 each and takes the softmax in float32: same as SDPA's d^-1/2.
        out = attention(q.float(), split_heads(k, self.heads).float(), split_heads(v, self.heads).float())
        return self.to_out(merge_heads(out).to(latents.dtype))


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm -> Linear (no bias) -> GELU -> Linear (no bias); keys .0, .1, .3."""
    inner = dim * mult
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(),
                         nn.Linear(inner, dim, bias=False))


class Resampler(nn.Module):
    """`image_proj_model`: (B, 257, embedding_dim) CLIP tokens -> (B, video_length·num_queries, output_dim);
    tokens [16f, 16f+16) belong to frame f."""

    def __init__(self, config: ResamplerConfig | None = None) -> None:
        super().__init__()
        cfg = config or ResamplerConfig()
        self.config = cfg
        self.latents = nn.Parameter(torch.randn(1, cfg.total_queries, cfg.dim) / cfg.dim**0.5)
        self.proj_in = nn.Linear(cfg.embedding_dim, cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, cfg.output_dim)
        self.norm_out = nn.LayerNorm(cfg.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(cfg.dim, cfg.dim_head, cfg.heads), feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth)
        )

    def unused_keys(self) -> list[str]:
        """Every Resampler parameter is used at inference."""
        return []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(tokens.shape[0], -1, -1)
        x = self.proj_in(tokens)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
