"""One full-width UNet forward at the real latent (B 1, 16 frames, 40x64), float32 on the CPU, weights by
the vectors' fill rule, and the speed options of `--compile` / channels-last / the SDPA kernel as ratios.
Each measurement runs in a fresh subprocess so that its peak RSS is that forward's alone.

Reference: the original code's full-size UNet forward, measured side by side with ours on a quiet 2-core
machine: 90.6 s wall, 176.9 s CPU, 12.05 GB peak (the spec's earlier 157 s came from a loaded machine).
Ours then: 83.2 s wall, 165.0 s CPU, 7.02 GB (0.93x the CPU time, 0.58x the memory).
Goal: at most 0.7x the original's CPU seconds at at most 0.6x its memory. CPU seconds are the
figure compared: load moves them far less than wall time.

Variants (ratio of forward CPU seconds against today's layout, lower is faster):
  channels-last  today's layout (activations stored channels-last, NHWC convolutions)
  contiguous     the same UNet with activations kept NCHW (what channels-last saves)
  sdpa-math      the SDPA math kernel instead of PyTorch's choice (flash for CPU)
  compile        torch.compile of the UNet (warm: compile time excluded, reported separately)
The reduced UNet (the vectors' B 2 x 16 frames x 8x16) runs every variant; the full width runs the
baseline, and the variants too when BENCH_UNET_FULL_VARIANTS=1 (each about 90 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ORIGINAL_WALL_S = 90.6
ORIGINAL_CPU_S = 176.9
ORIGINAL_PEAK_GB = 12.05
OURS_BEFORE_CPU_S = 165.0  # the same session as the original's figures
GOAL_CPU_RATIO = 0.70
GOAL_MEMORY_RATIO = 0.60
VARIANTS = ("channels-last", "contiguous", "sdpa-math", "compile")
REDUCED_REPEATS = 3


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _apply_variant(variant: str, unet) -> float:  # noqa: ANN001
    """Set the variant up; returns the seconds spent compiling (compile only)."""
    import torch

    from tooncrafter_studio.diffusion.nets import attention, unet_blocks

    if variant == "contiguous":
        unet_blocks.CHANNELS_LAST = torch.contiguous_format
    elif variant == "sdpa-math":
        attention.set_sdpa_kernel("math")
    elif variant == "compile":
        from tooncrafter_studio.diffusion.run.compile import compile_unet

        if not compile_unet(unet, "cpu"):
            raise RuntimeError("torch.compile is not available here")
    return 0.0


def _child(size: str, variant: str) -> None:
    import torch

    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig, keep_cpu_heap_small

    keep_cpu_heap_small()  # what build_model does for a CPU model (the fill's temporaries go back too)
    config = UNetConfig() if size == "full" else UNetConfig.reduced()
    start = time.perf_counter()
    with torch.device("meta"):
        unet = UNet3D(config)
    unet = unet.to_empty(device="cpu").eval()
    fill_module(unet, "model.diffusion_model.")
    fill_s = time.perf_counter() - start
    rss_after_fill = _peak_rss_bytes()
    _apply_variant(variant, unet)

    gen = torch.Generator().manual_seed(0)
    batch, (h, w) = (1, (40, 64)) if size == "full" else (2, (8, 16))
    x = torch.randn((batch, 4, 16, h, w), generator=gen)
    c_concat = torch.zeros_like(x)
    c_concat[:, :, [0, 15]] = torch.randn((batch, 4, 2, h, w), generator=gen)
    context = torch.randn((batch, 333, config.context_dim), generator=gen)
    t = torch.tensor([699] * batch)
    fs = torch.tensor([10] * batch)
    inputs = (torch.cat([x, c_concat], dim=1), t, context, fs)

    warmup_s = 0.0
    repeats = 1
    if size != "full" or variant == "compile":  # warm-up: compilation, allocator, kernel choice
        clock = time.perf_counter()
        with torch.inference_mode():
            unet(*inputs)
        warmup_s = time.perf_counter() - clock
        repeats = REDUCED_REPEATS if size != "full" else 1
    load_before = os.getloadavg()[0]
    cpu_times, wall_times = [], []
    for _ in range(repeats):
        cpu_start, start = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            out = unet(*inputs)
        wall_times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    result = {
        "size": size, "variant": variant,
        "threads": torch.get_num_threads(),
        "fill_s": fill_s,
        "warmup_s": warmup_s,
        "forward_s": min(wall_times),
        "forward_cpu_s": min(cpu_times),
        "load": [load_before, os.getloadavg()[0]],
        "weights_bytes": sum(p.numel() * p.element_size() for p in unet.parameters()),
        "peak_after_fill_bytes": rss_after_fill,
        "peak_bytes": _peak_rss_bytes(),
        "finite": bool(torch.isfinite(out).all()),
        "out_shape": list(out.shape),
    }
    print("RESULT " + json.dumps(result), flush=True)


COMPILE_TIMEOUT_S = 900  # compiling the UNet on 2 loaded cores took longer than 500 s once


def measure(size: str, variant: str) -> dict | None:
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_unet", "--child", size, variant],
                              capture_output=True, text=True, check=False,
                              timeout=COMPILE_TIMEOUT_S if variant == "compile" else None)
    except subprocess.TimeoutExpired:
        print(f"  {size} {variant}: not finished within {COMPILE_TIMEOUT_S} s (compilation on the CPU)")
        return None
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {size} {variant}: failed ({tail[:160]})")
        return None
    return json.loads(line[len("RESULT "):])


def _variant_table(size: str, variants: tuple[str, ...]) -> None:
    base = None
    print(f"  {size} UNet, forward CPU seconds (best of {REDUCED_REPEATS if size != 'full' else 1}), "
          "ratio against today's channels-last layout:")
    for variant in variants:
        r = measure(size, variant)
        if r is None:
            continue
        if variant == "channels-last":
            base = r
        ratio = f"{r['forward_cpu_s'] / base['forward_cpu_s']:.2f}x" if base else "-"
        extra = f", warm-up {r['warmup_s']:.1f} s" if variant == "compile" else ""
        print(f"    {variant:14s} {r['forward_cpu_s']:7.2f} s CPU ({r['forward_s']:.2f} s wall)  {ratio}{extra}")


def run() -> None:
    r = measure("full", "channels-last")
    if r is None:
        raise RuntimeError("UNet benchmark subprocess failed")
    gb = r["peak_bytes"] / 1e9
    print(f"UNet3D full width, latent 1x4x16x40x64, fp32 CPU, {r['threads']} threads, output {r['out_shape']}"
          f"{'' if r['finite'] else ' (NON-FINITE!)'}")
    print(f"  build on meta + fill rule:  {r['fill_s']:.1f} s (weights {r['weights_bytes'] / 1e9:.2f} GB, "
          f"peak RSS so far {r['peak_after_fill_bytes'] / 1e9:.2f} GB)")
    print(f"  forward:                    {r['forward_s']:.1f} s wall, {r['forward_cpu_s']:.1f} s CPU; "
          f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f} (other processes slow this down)")
    print(f"  CPU-time ratio:             {r['forward_cpu_s'] / ORIGINAL_CPU_S:.2f}x the original's "
          f"{ORIGINAL_CPU_S} s CPU (goal <= {GOAL_CPU_RATIO:.2f}x); {r['forward_cpu_s'] / OURS_BEFORE_CPU_S:.2f}x "
          f"ours before ({OURS_BEFORE_CPU_S} s)")
    print(f"  wall ratio (load-sensitive): {r['forward_s'] / ORIGINAL_WALL_S:.2f}x the original's {ORIGINAL_WALL_S} s")
    print(f"  peak RSS (whole process):   {gb:.2f} GB = {gb / ORIGINAL_PEAK_GB:.2f}x the original's "
          f"{ORIGINAL_PEAK_GB} GB (goal <= {GOAL_MEMORY_RATIO:.2f}x)")
    print("Speed options on the CPU:")
    _variant_table("reduced", VARIANTS)
    if os.environ.get("BENCH_UNET_FULL_VARIANTS") == "1":
        _variant_table("full", VARIANTS)
    else:
        print("  full-width variants: set BENCH_UNET_FULL_VARIANTS=1 (about 90 s each on 2 cores)")


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        _child(sys.argv[i + 1] if len(sys.argv) > i + 1 else "full",
               sys.argv[i + 2] if len(sys.argv) > i + 2 else "channels-last")
    else:
        run()
