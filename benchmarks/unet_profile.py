"""Where a UNet forward spends its time: torch.profiler's operators, each charged to the innermost
part of the UNet that ran it (a ResBlock's own layers, its temporal convolution, a transformer's
self-attention, cross-attention, feed-forward, norms...), and the blocks by resolution.

    python -m benchmarks.unet_profile bf16 [full|reduced]

The parts are marked by forward hooks that open a `record_function` span per module; an operator
belongs to the innermost span around it. The profiler's times are the main thread's wall clock per
operator (inflated by other processes on a loaded machine, all alike), so the shares are what to read;
the forward's CPU seconds (time.process_time, both threads) are printed beside them. bench_unet runs
this when BENCH_UNET_PROFILE=1.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

SPAN = "U:"


def part_label(unet: Any, name: str) -> str:
    """'ST/attn1' for a spatial transformer's self-attention, 'RB/tconv/gn' for the norm of a
    ResBlock's temporal convolution, 'TT(init)/ff' for the init_attn's feed-forward, and so on."""
    import torch

    from tooncrafter_studio.diffusion.nets import unet_blocks as ub

    kinds: list[str] = []
    module = unet
    for part in name.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
        for cls, label in ((ub.SpatialTransformer, "ST"), (ub.TemporalTransformer, "TT"), (ub.TemporalConvBlock, "tconv"),
                           (ub.ResBlock, "RB"), (ub.Attention, part), (ub.FeedForward, "ff"),
                           (torch.nn.LayerNorm, "ln"), (ub.GroupNorm32, "gn"), (ub.Upsample, "up"),
                           (ub.Downsample, "down")):
            if isinstance(module, cls):
                kinds.append(label)
                break
    if name.startswith("init_attn") and kinds:
        kinds[0] = "TT(init)"
    return "/".join(kinds)


def mark_parts(unet: Any) -> list[Any]:
    """Forward hooks that wrap each part in a profiler span named SPAN + label (+ @HxW for blocks)."""
    import torch
    from torch.autograd.profiler import record_function

    from tooncrafter_studio.diffusion.nets import unet_blocks as ub

    marked = (ub.SpatialTransformer, ub.TemporalTransformer, ub.TemporalConvBlock, ub.ResBlock, ub.Attention,
              ub.FeedForward, torch.nn.LayerNorm, ub.GroupNorm32, ub.Upsample, ub.Downsample)
    open_spans: dict[int, list[Any]] = {}
    handles = []
    for name, module in unet.named_modules():
        if not isinstance(module, marked):
            continue
        label = part_label(unet, name)

        def enter(mod: Any, args: tuple[Any, ...], label: str = label) -> None:
            x = args[0]
            where = f"@{x.shape[-2]}x{x.shape[-1]}" if x.dim() == 4 and not isinstance(mod, ub.GroupNorm32) else ""
            span = record_function(SPAN + label + where)
            span.__enter__()
            open_spans.setdefault(id(mod), []).append(span)

        def leave(mod: Any, _args: Any, _out: Any) -> None:
            open_spans[id(mod)].pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    return handles


def attribute(events: Any) -> dict[str, collections.Counter]:
    """Self time (µs) of every operator charged to its innermost part, by part, by operator, by both,
    and by outermost block @ resolution."""
    by: dict[str, collections.Counter] = {k: collections.Counter() for k in ("part", "op", "part_op", "block")}
    for event in events:
        if event.name.startswith(SPAN):
            continue
        inner = outer = None
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith(SPAN):
                inner = inner or parent.name[len(SPAN):]
                outer = parent.name[len(SPAN):]
            parent = parent.cpu_parent
        part = (inner or "other").split("@")[0]
        took = event.self_cpu_time_total
        by["part"][part] += took
        by["op"][event.name] += took
        by["part_op"][f"{part:16s} {event.name}"] += took
        by["block"][outer or "other"] += took
    return by


def profile_forward(dtype_name: str = "bf16", size: str = "full") -> dict[str, Any]:
    import torch

    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig, keep_cpu_heap_small

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    keep_cpu_heap_small()
    config = UNetConfig() if size == "full" else UNetConfig.reduced()
    with torch.device("meta"):
        unet = UNet3D(config)
    unet = unet.to(dtype=dtype).to_empty(device="cpu").eval()
    fill_module(unet, "model.diffusion_model.")
    mark_parts(unet)
    gen = torch.Generator().manual_seed(0)
    batch, (h, w) = (1, (40, 64)) if size == "full" else (2, (8, 16))
    x = torch.randn((batch, 4, 16, h, w), generator=gen)
    inputs = (torch.cat([x, torch.zeros_like(x)], 1), torch.tensor([699] * batch),
              torch.randn((batch, 333, config.context_dim), generator=gen), torch.tensor([10] * batch))
    if size != "full":  # warm-up (the full width is run once only: ~1.5 CPU-minutes)
        with torch.inference_mode():
            unet(*inputs)
    cpu = time.process_time()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, torch.inference_mode():
        unet(*inputs)
    cpu = time.process_time() - cpu
    return {"dtype": dtype_name, "size": size, "threads": torch.get_num_threads(), "forward_cpu_s": cpu,
            "by": attribute(prof.events())}


def print_profile(result: dict[str, Any], top: int = 25) -> None:
    by = result["by"]
    total = sum(by["op"].values()) or 1
    print(f"  {result['dtype']} {result['size']} UNet forward: {result['forward_cpu_s']:.1f} CPU s "
          f"({result['threads']} threads) under the profiler; shares of the profiled operator time:")
    for title, key, count in (("by part (innermost)", "part", top), ("by operator", "op", 15),
                              ("by part and operator", "part_op", top), ("by block @ resolution", "block", 16)):
        print(f"  -- {title}")
        for name, took in by[key].most_common(count):
            print(f"    {name:62s} {100 * took / total:5.1f} %")


if __name__ == "__main__":
    print_profile(profile_forward(sys.argv[1] if len(sys.argv) > 1 else "bf16",
                                  sys.argv[2] if len(sys.argv) > 2 else "full"))
