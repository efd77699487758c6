"""Vector checkers for the UNet: `unet_reduced.npz` and `unet_full.npz` (vectors/README §3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..nets.unet import UNet3D, UNetConfig, keep_cpu_heap_small
from .fill import fill_module
from .verify import Comparison, compare, compare_probe, register

PREFIX = "model.diffusion_model."


def probe_names(config: UNetConfig) -> list[str]:
    """Modules whose outputs the vectors record, in the vectors' naming."""
    n_in = 1 + len(config.channel_mult) * config.num_res_blocks + len(config.channel_mult) - 1
    n_out = len(config.channel_mult) * (config.num_res_blocks + 1)
    names = ["time_embed", "fps_embedding"] + [f"input_blocks.{i}" for i in range(n_in)]
    names += ["init_attn", "middle_block"] + [f"output_blocks.{i}" for i in range(n_out)] + ["out"]
    return names


def build_filled_unet(config: UNetConfig) -> UNet3D:
    """The UNet with the fill rule's weights, built on meta and filled tensor by tensor (no
    throw-away random initialisation, so the full width needs only its 5.8 GB of weights)."""
    keep_cpu_heap_small()
    with torch.device("meta"):
        unet = UNet3D(config)
    unet = unet.to_empty(device="cpu").eval()
    fill_module(unet, PREFIX)
    return unet


def run_with_probes(unet: UNet3D, *args) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward, recording the first output of every probed module."""
    probes: dict[str, torch.Tensor] = {}
    handles = []
    for name in probe_names(unet.config):
        def hook(module, inputs, output, name=name):
            probes.setdefault(name, output.detach().clone())
        handles.append(unet.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.inference_mode():
            out = unet(*args)
    finally:
        for handle in handles:
            handle.remove()
    return out, probes


def _inputs(z, suffix: str = "") -> torch.Tensor:
    return torch.cat([torch.from_numpy(z["x" + suffix]), torch.from_numpy(z["c_concat" + suffix])], dim=1)


def check_unet_file(path: Path, unet: UNet3D) -> list[Comparison]:
    """Run a filled UNet on a vector file's inputs; compare output, probes and the extra calls."""
    config = unet.config
    z = np.load(path)
    t, context, fs = (torch.from_numpy(z[k]) for k in ("t", "context", "fs"))
    out, probes = run_with_probes(unet, _inputs(z), t, context, fs)
    results = [compare("out", out, z["out"])]
    for name in probe_names(config):
        key = f"probe/{name}/call0"
        if f"{key}/stats" in z:
            results += compare_probe(name, probes[name], z, key)
    if "out_default_fs" in z:
        with torch.inference_mode():
            results.append(compare("out_default_fs", unet(_inputs(z), t, context), z["out_default_fs"]))
    if "out_T4" in z:
        with torch.inference_mode():
            results.append(compare("out_T4", unet(_inputs(z, "_T4"), t, context, fs), z["out_T4"]))
    return results


@register("unet_reduced.npz")
def check_unet_reduced(path: Path) -> list[Comparison]:
    return check_unet_file(path, build_filled_unet(UNetConfig.reduced()))


@register("unet_full.npz")
def check_unet_full(path: Path) -> list[Comparison]:
    return check_unet_file(path, build_filled_unet(UNetConfig()))
