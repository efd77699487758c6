"""Vector checkers for the conditioning encoders, the autoencoder and the preprocessing
(vectors/README §3): vae_reduced, vae_full_tiny, clip_text_full, clip_vision_full, resampler_full,
clip_preprocess, pixel_preprocess, and the UNet-free conditioning arrays of e2e_reduced.

Modules are built on `meta`, materialised with `to_empty` and filled tensor by tensor with the
weight-fill rule under their full checkpoint prefix (float32, CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..nets.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    concat_condition,
    decode_interpolation,
    encode_pair,
    encode_video,
)
from ..nets.clip import (
    ImageEmbedder,
    TextEncoder,
    TextEncoderConfig,
    VisionEncoderConfig,
    clip_preprocess,
    tokenize,
)
from ..nets.resampler import Resampler, ResamplerConfig
from ..run.preprocess import image_to_tensor, resize_center_crop
from .fill import fill_module
from .verify import CHECKERS, Comparison, compare, register, tensor_stats

VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
IMAGE_PREFIX = "embedder."
RESAMPLER_PREFIX = "image_proj_model."

M = TypeVar("M", bound=nn.Module)


def build_filled(factory: Callable[[], M], prefix: str) -> M:
    """`factory()` built on meta, materialised on the CPU and filled by the rule with `prefix`."""
    with torch.device("meta"):
        module = factory()
    module = module.to_empty(device="cpu").eval()
    fill_module(module, prefix)
    return module


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _stats_and_head(name: str, ours: torch.Tensor, z: Any, key: str) -> list[Comparison]:
    """Compare with `{key}_stats` and `{key}_head` (head = leading slice of the same rank, or the
    first values of the flattened tensor), relative to the reference's max |x| from its stats."""
    stats = z[f"{key}_stats"]
    scale = float(max(abs(stats[3]), abs(stats[4])))
    results = [compare(f"{name} stats", tensor_stats(ours), stats, scale=scale)]
    head = z[f"{key}_head"]
    if head.ndim == ours.ndim:
        piece = ours[tuple(slice(0, s) for s in head.shape)]
    else:
        piece = ours.reshape(-1)[: head.size]
    results.append(compare(f"{name} head", piece, head, scale=scale))
    return results


# --------------------------------------------------------------------------------------------------
# Autoencoder

def check_vae_file(path: Path, config: AutoencoderConfig) -> list[Comparison]:
    z = np.load(path)
    ae = build_filled(lambda: Autoencoder(config), VAE_PREFIX)
    frame_a, frame_b = _t(z["frame_a"]), _t(z["frame_b"])
    video = torch.stack([frame_a] * 8 + [frame_b] * 8, dim=1)[None]
    results: list[Comparison] = []
    with torch.inference_mode():
        mean, logvar, _ = ae.encode(video[0].transpose(0, 1))
        results += [compare("posterior_mean", mean, z["posterior_mean"]),
                    compare("posterior_logvar", logvar, z["posterior_logvar"])]
        latent, refs = encode_video(ae, video, _t(z["posterior_noise"]))
        results.append(compare("z", latent, z["z"]))
        # The two-frame encode used by the pipeline must give the same latent ends and references.
        z_start, z_end, pair_refs = encode_pair(ae, frame_a[None], frame_b[None], _t(z["posterior_noise"]))
        results.append(compare("z (pair encode, frames 0/15)", torch.stack([z_start, z_end], dim=2),
                               z["z"][:, :, [0, -1]]))
        for i, ref in enumerate(refs):
            if f"hidden{i}" in z:
                results.append(compare(f"hidden{i}", ref, z[f"hidden{i}"]))
                results.append(compare(f"hidden{i} (pair encode)", pair_refs[i], z[f"hidden{i}"]))
            else:
                shape_ok = tuple(ref.shape) == tuple(int(s) for s in z[f"hidden{i}_shape"])
                if not shape_ok:
                    results.append(Comparison(f"hidden{i} shape", float("inf"), float("inf"), 0.0,
                                              f"{tuple(ref.shape)} != {tuple(z[f'hidden{i}_shape'])}"))
                    continue
                results += _stats_and_head(f"hidden{i}", ref, z, f"hidden{i}")
        final, decode16, decode14 = decode_interpolation(ae, _t(z["samples"]), refs)
        results += [compare("decode16", decode16, z["decode16"]), compare("decode14", decode14, z["decode14"]),
                    compare("final", final, z["final"])]
        # The bounded-memory decode, in pieces of about one frame of the largest map.
        ae.lean_piece_elements = refs[0][:, :, 0].numel()
        final_lean, _, _ = decode_interpolation(ae, _t(z["samples"]), refs, lean=True)
        results.append(compare("final (lean decode)", final_lean, z["final"]))
    return results


@register("vae_reduced.npz")
def check_vae_reduced(path: Path) -> list[Comparison]:
    return check_vae_file(path, AutoencoderConfig.reduced())


@register("vae_full_tiny.npz")
def check_vae_full_tiny(path: Path) -> list[Comparison]:
    return check_vae_file(path, AutoencoderConfig())


# --------------------------------------------------------------------------------------------------
# CLIP, Resampler, preprocessing

@register("clip_text_full.npz")
def check_clip_text_full(path: Path) -> list[Comparison]:
    z = np.load(path)
    tokens = tokenize([str(p) for p in z["prompts"]])
    results = [compare("tokens", tokens, z["tokens"], tolerance=0.0)]
    encoder = build_filled(TextEncoder, TEXT_PREFIX)
    with torch.inference_mode():
        results.append(compare("out", encoder(_t(z["tokens"])), z["out"]))
    return results


def _clip_preprocess_input(image_u8: np.ndarray) -> torch.Tensor:
    return ((_t(image_u8).permute(2, 0, 1)[None].float() / 255.0 - 0.5) * 2.0)


@register("clip_preprocess.npz")
def check_clip_preprocess(path: Path) -> list[Comparison]:
    z = np.load(path)
    results = [compare("out", clip_preprocess(_clip_preprocess_input(z["image_u8"])), z["out"]),
               compare("out2", clip_preprocess(_clip_preprocess_input(z["image2_u8"])), z["out2"])]
    zeros = clip_preprocess(torch.zeros(1, 3, 320, 512))
    results.append(compare("out_zeros_image_per_channel", zeros[0, :, 0, 0], z["out_zeros_image_per_channel"]))
    spread = float((zeros - zeros[:, :, :1, :1]).abs().max())
    results.append(Comparison("zero image is constant", spread, spread, 1e-6))
    return results


def zero_image_tokens(embedder: ImageEmbedder) -> torch.Tensor:
    """The unconditional image: tokens of an all-zero (mid-grey) 320x512 frame."""
    with torch.inference_mode():
        return embedder(torch.zeros(1, 3, 320, 512))


@register("clip_vision_full.npz")
def check_clip_vision_full(path: Path, embedder: ImageEmbedder | None = None,
                           zero_tokens: torch.Tensor | None = None) -> list[Comparison]:
    z = np.load(path)
    image_u8 = np.load(path.parent / "clip_preprocess.npz")["image_u8"]
    embedder = embedder if embedder is not None else build_filled(ImageEmbedder, IMAGE_PREFIX)
    with torch.inference_mode():
        results = [compare("tokens", embedder(_clip_preprocess_input(image_u8)), z["tokens"])]
    zero = zero_tokens if zero_tokens is not None else zero_image_tokens(embedder)
    return results + _stats_and_head("tokens_zero_image", zero, z, "tokens_zero_image")


@register("resampler_full.npz")
def check_resampler_full(path: Path, zero_tokens: torch.Tensor | None = None) -> list[Comparison]:
    """`zero_tokens`: the full image embedder's tokens of the zero image (built here when not given;
    the unconditional image context is the Resampler of them)."""
    z = np.load(path)
    tokens = _t(np.load(path.parent / "clip_vision_full.npz")["tokens"])
    if zero_tokens is None:
        zero_tokens = zero_image_tokens(build_filled(ImageEmbedder, IMAGE_PREFIX))
    resampler = build_filled(Resampler, RESAMPLER_PREFIX)
    generator = torch.Generator().manual_seed(int(z["input_random_seed"]))
    random_b2 = torch.randn((2, 257, 1280), generator=generator)
    results = [compare("input_random_b2_stats", tensor_stats(random_b2), z["input_random_b2_stats"])]
    with torch.inference_mode():
        results.append(compare("out", resampler(tokens), z["out"]))
        results.append(compare("out_random_b2_head", resampler(random_b2)[:, :2], z["out_random_b2_head"]))
        results += _stats_and_head("out_zero_image", resampler(zero_tokens), z, "out_zero_image")
    return results


@register("pixel_preprocess.npz")
def check_pixel_preprocess(path: Path) -> list[Comparison]:
    z = np.load(path)
    results = []
    for key in z.files:
        if key.endswith("/input_u8"):
            case = key[: -len("/input_u8")]
            results.append(compare(f"{case}/output_u8", resize_center_crop(z[key]), z[f"{case}/output_u8"],
                                   tolerance=0.0))
    return results


# --------------------------------------------------------------------------------------------------
# e2e_reduced: the conditioning that does not need the UNet

def e2e_conditioning(z: Any) -> dict[str, torch.Tensor]:
    """Our conditioning for the reduced e2e run: tokens, embeddings, contexts and c_concat (with the
    stored posterior noise draw0)."""
    text = build_filled(lambda: TextEncoder(TextEncoderConfig.reduced()), TEXT_PREFIX)
    embedder = build_filled(lambda: ImageEmbedder(VisionEncoderConfig.reduced()), IMAGE_PREFIX)
    resampler = build_filled(lambda: Resampler(ResamplerConfig.reduced()), RESAMPLER_PREFIX)
    ae = build_filled(lambda: Autoencoder(AutoencoderConfig.reduced()), VAE_PREFIX)
    frame_a, frame_b = _t(z["frame_a"])[None], _t(z["frame_b"])[None]
    out: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        out["tokens"] = tokenize(str(z["prompt"]))
        out["tokens_empty"] = tokenize("")
        out["text_emb"] = text(out["tokens"])
        out["text_emb_uncond"] = text(out["tokens_empty"])
        out["img_tokens"] = embedder(frame_a)
        out["img_tokens_uncond"] = embedder(torch.zeros_like(frame_a))
        out["img_emb"] = resampler(out["img_tokens"])
        out["img_emb_uncond"] = resampler(out["img_tokens_uncond"])
        out["cond_context"] = torch.cat([out["text_emb"], out["img_emb"]], dim=1)
        out["uncond_context"] = torch.cat([out["text_emb_uncond"], out["img_emb_uncond"]], dim=1)
        z_start, z_end, _ = encode_pair(ae, frame_a, frame_b, _t(z["draw0"]))
        out["c_concat"] = concat_condition(z_start, z_end, frames=16)
    return out


def check_e2e_conditioning(path: Path) -> list[Comparison]:
    z = np.load(path)
    ours = e2e_conditioning(z)
    return [compare(name, value, z[name], tolerance=0.0 if name.startswith("tokens") else 1e-5)
            for name, value in ours.items()]


# Another area (the sampler) may register a complete e2e checker; it can call check_e2e_conditioning.
if "e2e_reduced.npz" not in CHECKERS:
    register("e2e_reduced.npz")(check_e2e_conditioning)


def check_pixel_conversion() -> list[Comparison]:
    """image_to_tensor follows ToTensor + Normalize(0.5, 0.5) (no vector file; used by the tests)."""
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    expected = (u8.astype(np.float32) / 255.0 - 0.5) / 0.5
    return [compare("image_to_tensor", image_to_tensor(u8), expected.transpose(2, 0, 1), tolerance=0.0)]
