"""Text encoder and image embedder (spec §2.3, §3, §4) on top of the installed open_clip_torch.

The OpenCLIP architecture is built with empty weights (no pretrained download); the weights come
from the ToonCrafter checkpoint (`cond_stage_model.*`, `embedder.*`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ModelError
from ._params import check_options, unwrap_params
from .attention import attention, merge_heads, split_heads


@dataclass(frozen=True)
class OpenClipArch:
    """An OpenCLIP model config (the JSON that open_clip keeps per architecture)."""

    name: str = "ViT-H-14"
    embed_dim: int = 1024
    image_size: int = 224
    vision_layers: int = 32
    vision_width: int = 1280
    vision_head_width: int = 80
    patch_size: int = 14
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 1024
    text_heads: int = 16
    text_layers: int = 24

    def open_clip_config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {"image_size": self.image_size, "layers": self.vision_layers, "width": self.vision_width,
                           "head_width": self.vision_head_width, "patch_size": self.patch_size},
            "text_cfg": {"context_length": self.context_length, "vocab_size": self.vocab_size,
                         "width": self.text_width, "heads": self.text_heads, "layers": self.text_layers},
        }

    @classmethod
    def from_open_clip_config(cls, name: str, cfg: Mapping[str, Any]) -> OpenClipArch:
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        extra_v = set(v) - {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"}
        extra_t = set(t) - {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
        if extra_v or extra_t or v.get("mlp_ratio", 4.0) != 4.0 or t.get("mlp_ratio", 4.0) != 4.0:
            raise ModelError(f"OpenCLIP architecture '{name}' uses options this app does not support.")
        return cls(name=name, embed_dim=cfg["embed_dim"], image_size=v["image_size"], vision_layers=v["layers"],
                   vision_width=v["width"], vision_head_width=v["head_width"], patch_size=v["patch_size"],
                   context_length=t["context_length"], vocab_size=t["vocab_size"], text_width=t["width"],
                   text_heads=t["heads"], text_layers=t["layers"])

    @property
    def vision_heads(self) -> int:
        return self.vision_width // self.vision_head_width

    @property
    def vision_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1


VIT_H_14 = OpenClipArch()
# The tiny architecture of the reduced reference vectors (vectors/README §2), same code paths as ViT-H-14.
TC_TINY = OpenClipArch(name="TC-tiny", embed_dim=64, vision_layers=3, vision_width=64, vision_head_width=16,
                       text_width=64, text_heads=4, text_layers=3)
KNOWN_ARCHS: dict[str, OpenClipArch] = {VIT_H_14.name: VIT_H_14, TC_TINY.name: TC_TINY}


def arch_from_params(values: Mapping[str, Any]) -> OpenClipArch:
    """`arch` names a known architecture; `arch_config` (an open_clip JSON dict) may define another."""
    name = values.get("arch", "ViT-H-14")
    if "arch_config" in values:
        return OpenClipArch.from_open_clip_config(name, values["arch_config"])
    if name not in KNOWN_ARCHS:
        raise ModelError(f"Unknown OpenCLIP architecture '{name}' (known: {', '.join(KNOWN_ARCHS)}).")
    return KNOWN_ARCHS[name]


# Keys of the original encoder params that only matter for training or for downloading.
_IGNORED = {"freeze", "version", "device", "max_length", "ucg_rate", "arch", "arch_config", "layer",
            "antialias", "unsqueeze_dim", "repeat_to_max_len", "num_image_crops", "output_tokens"}


@dataclass(frozen=True)
class TextEncoderConfig:
    """`FrozenOpenCLIPEmbedder` with layer 'penultimate' (ToonCrafter) or 'last'."""

    arch: OpenClipArch = field(default_factory=lambda: VIT_H_14)
    layer: str = "penultimate"

    @property
    def layers_run(self) -> int:
        return self.arch.text_layers - (1 if self.layer == "penultimate" else 0)

    @classmethod
    def reduced(cls) -> TextEncoderConfig:
        """The text encoder of the reduced reference vectors: TC-tiny, penultimate layer."""
        return cls(arch=TC_TINY)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> TextEncoderConfig:
        values = unwrap_params(params)
        layer = values.get("layer", "last")
        if layer not in ("penultimate", "last"):
            raise ModelError(f"Text encoder layer '{layer}' is not supported (use 'penultimate' or 'last').")
        unknown = set(values) - _IGNORED
        if unknown:
            raise ModelError(f"Unknown text encoder option(s) {sorted(unknown)} in the model configuration.")
        return cls(arch=arch_from_params(values), layer=layer)


@dataclass(frozen=True)
class VisionEncoderConfig:
    """`FrozenOpenCLIPImageEmbedderV2`: all tokens before `ln_post`, CLIP preprocessing with anti-aliasing."""

    arch: OpenClipArch = field(default_factory=lambda: VIT_H_14)

    @classmethod
    def reduced(cls) -> VisionEncoderConfig:
        """The image embedder of the reduced reference vectors: TC-tiny."""
        return cls(arch=TC_TINY)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> VisionEncoderConfig:
        values = unwrap_params(params)
        check_options("Image embedder", values, {"antialias": True, "output_tokens": False,
                                                 "num_image_crops": 0})
        unknown = set(values) - _IGNORED
        if unknown:
            raise ModelError(f"Unknown image embedder option(s) {sorted(unknown)} in the model configuration.")
        return cls(arch=arch_from_params(values))


# --------------------------------------------------------------------------------------------------
# Building the OpenCLIP model with empty weights

def build_open_clip(arch: OpenClipArch) -> nn.Module:
    """The open_clip `CLIP` module for `arch`, random-initialised on the current default device (build
    under `torch.device("meta")` to allocate nothing). No pretrained weights are ever requested."""
    from open_clip.model import CLIP

    cfg = arch.open_clip_config()
    return CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"], quick_gelu=False)


def _block_forward(block: nn.Module, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """One open_clip ResidualAttentionBlock on batch-first (B, N, C) tokens, computed by us from its
    parameters so that open_clip's changing internals (batch_first, mask handling) do not matter:
    x + attn(ln_1 x) ; x + mlp(ln_2 x). nn.MultiheadAttention layout: in_proj rows q, k, v."""
    attn = block.attn
    heads = attn.num_heads
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (split_heads(t, heads) for t in (q, k, v))
    if causal:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        out = attention(q, k, v)
    x = x + block.ls_1(attn.out_proj(merge_heads(out)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


# --------------------------------------------------------------------------------------------------
# Text

def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    """OpenCLIP's CLIP BPE tokenisation (vocabulary shipped inside the open_clip package, no download):
    [SOT] tokens [EOT], truncated to `context_length` with EOT last, zero-padded -> (N, context_length)."""
    from open_clip.tokenizer import SimpleTokenizer

    global _TOKENIZER
    if _TOKENIZER is None or _TOKENIZER.context_length != context_length:
        _TOKENIZER = SimpleTokenizer(context_length=context_length)
    if isinstance(texts, str):
        texts = [texts]
    return _TOKENIZER(list(texts)).long()


_TOKENIZER: Any = None


class TextEncoder(nn.Module):
    """`cond_stage_model`: (N, 77) tokens -> (N, 77, width) = ln_final(output of the penultimate block)
    for layer 'penultimate', all token positions kept (spec §3)."""

    def __init__(self, config: TextEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or TextEncoderConfig()
        model = build_open_clip(self.config.arch)
        del model.visual
        self.model = model

    def unused_keys(self) -> list[str]:
        """State-dict keys (relative to `cond_stage_model.`) that inference never reads: the blocks
        after the chosen layer, and the pooled projection and temperature."""
        skipped = [f"model.transformer.resblocks.{i}." for i in range(self.config.layers_run, self.config.arch.text_layers)]
        keys = [k for k in self.state_dict(keep_vars=True) if k.startswith(tuple(skipped))] if skipped else []
        return keys + ["model.text_projection", "model.logit_scale"]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = model.token_embedding(tokens.to(model.token_embedding.weight.device)) + model.positional_embedding
        for block in model.transformer.resblocks[: self.config.layers_run]:
            x = _block_forward(block, x, causal=True)
        return model.ln_final(x)

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        return self(tokenize(texts, self.config.arch.context_length))


# --------------------------------------------------------------------------------------------------
# Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def gaussian_kernel1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(size, dtype=dtype, device=device) - size // 2
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def antialias_blur(x: torch.Tensor, factors: tuple[float, float]) -> torch.Tensor:
    """The Gaussian pre-filter of a shrinking resize (spec §2.3 step 1): sigma = max((f-1)/2, 0.001)
    per axis, kernel int(max(4 sigma, 3)) bumped to odd, separable, reflect padding."""
    sigmas = [max((f - 1.0) / 2.0, 0.001) for f in factors]
    sizes = [int(max(4.0 * s, 3)) for s in sigmas]
    sizes = [s + 1 if s % 2 == 0 else s for s in sizes]
    c = x.shape[1]
    ky = gaussian_kernel1d(sizes[0], sigmas[0], x.dtype, x.device).view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kx = gaussian_kernel1d(sizes[1], sigmas[1], x.dtype, x.device).view(1, 1, 1, -1).expand(c, 1, 1, -1)
    py, px = sizes[0] // 2, sizes[1] // 2
    x = F.pad(x, (px, px, py, py), mode="reflect")
    x = F.conv2d(x, kx, groups=c)
    return F.conv2d(x, ky, groups=c)


def clip_preprocess(x: torch.Tensor, size: int = 224) -> torch.Tensor:
    """x (B, 3, h, w) in [-1, 1] -> (B, 3, size, size) float32 CLIP input: anti-alias blur when
    shrinking, bicubic resize with align_corners=True (aspect ratio not kept), CLIP normalisation."""
    x = x.float()  # the original resizes in float32; Apple's MPS has no half-precision bicubic resize
    h, w = x.shape[-2:]
    factors = (h / size, w / size)
    if max(factors) > 1.0:
        x = antialias_blur(x, factors)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageEmbedder(nn.Module):
    """`embedder`: (B, 3, h, w) in [-1, 1] -> all (B, 257, width) vision-transformer tokens before
    `ln_post` (spec §4). The text-side leftovers stay in the module (and the checkpoint) unused.

    The original's `mean`/`std` buffers are non-persistent; the constants are applied in
    `clip_preprocess` instead, so a module built on `meta` needs no buffer fix-up."""

    def __init__(self, config: VisionEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or VisionEncoderConfig()
        model = build_open_clip(self.config.arch)
        del model.transformer
        self.model = model

    def unused_keys(self) -> list[str]:
        """State-dict keys (relative to `embedder.`) that inference never reads: the text-side
        leftovers, and `ln_post` / `proj` (the tokens are taken before them)."""
        return ["model.positional_embedding", "model.text_projection", "model.logit_scale",
                "model.token_embedding.weight", "model.ln_final.weight", "model.ln_final.bias",
                "model.visual.ln_post.weight", "model.visual.ln_post.bias", "model.visual.proj"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_preprocessed(clip_preprocess(images, self.config.arch.image_size))

    def encode_preprocessed(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        x = visual.conv1(x.to(visual.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)  # (B, grid², width), row-major patches
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.ln_pre(x)
        for block in visual.transformer.resblocks:
            x = _block_forward(block, x, causal=False)
        return x
