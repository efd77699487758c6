"""One full-width UNet forward at the real latent (B 1, 16 frames, 40x64) on the CPU, in float32 and in bf16
side by side, weights by the vectors' fill rule, the bf16 output's error against float32, and the speed
options of `--compile` / channels-last / the SDPA kernel as ratios. Each measurement runs in a fresh
subprocess so that its peak RSS is that forward's alone.

Reference: the original code's full-size UNet forward, measured side by side with ours on a quiet 2-core
machine: 90.6 s wall, 176.9 s CPU, 12.05 GB peak (the spec's earlier 157 s came from a loaded machine).
Ours then: 83.2 s wall, 165.0 s CPU, 7.02 GB (0.93x the CPU time, 0.58x the memory).
Goal: at most 0.7x the original's CPU seconds at at most 0.6x its memory. CPU seconds are the
figure compared: load moves them far less than wall time.

bf16 (issue 25): on a CPU with AVX-512 BF16 or AMX (run/cpu_bf16.py) the engine's CPU default. Goal: the
bf16 forward at most 0.5x the float32 forward's CPU seconds (at most 0.45x the original's), its output
within precision.py's bf16 UNet tolerance of the float32 output. On other CPUs bf16 is emulated and
skipped (BENCH_UNET_BF16=1 runs it anyway). BENCH_UNET_PROFILE=1 adds the profile of the bf16 forward
(benchmarks/unet_profile.py: where the time goes, by part of the UNet and by operator).

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
import tempfile
import time

ORIGINAL_WALL_S = 90.6
ORIGINAL_CPU_S = 176.9
ORIGINAL_PEAK_GB = 12.05
OURS_BEFORE_CPU_S = 165.0  # the same session as the original's figures
GOAL_CPU_RATIO = 0.70
GOAL_MEMORY_RATIO = 0.60
GOAL_BF16_RATIO = 0.50  # bf16 / float32 forward CPU seconds, same machine
GOAL_BF16_ORIGINAL_RATIO = 0.45  # bf16 / the original's float32 CPU seconds
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


def _child(size: str, variant: str, dtype_name: str = "fp32", save: str = "") -> None:
    import torch

    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig, keep_cpu_heap_small

    keep_cpu_heap_small()  # what build_model does for a CPU model (the fill's temporaries go back too)
    config = UNetConfig() if size == "full" else UNetConfig.reduced()
    start = time.perf_counter()
    with torch.device("meta"):
        unet = UNet3D(config)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    unet = unet.to(dtype=dtype).to_empty(device="cpu").eval()  # filled in the run's precision
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
        "size": size, "variant": variant, "dtype": dtype_name,
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
    if save:  # the output, for the bf16-against-float32 error (float32: what the UNet returns)
        torch.save(out.float(), save)
    print("RESULT " + json.dumps(result), flush=True)


COMPILE_TIMEOUT_S = 900  # compiling the UNet on 2 loaded cores took longer than 500 s once


def measure(size: str, variant: str, dtype: str = "fp32", save: str = "") -> dict | None:
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_unet", "--child", size, variant, dtype, save],
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
    with tempfile.TemporaryDirectory(prefix="bench-unet-") as folder:
        fp32_out, bf16_out = os.path.join(folder, "fp32.pt"), os.path.join(folder, "bf16.pt")
        r = measure("full", "channels-last", "fp32", fp32_out)
        if r is None:
            raise RuntimeError("UNet benchmark subprocess failed")
        _float32_report(r)
        _bf16_report(r, fp32_out, bf16_out)
    print("Speed options on the CPU (float32):")
    _variant_table("reduced", VARIANTS)
    if os.environ.get("BENCH_UNET_FULL_VARIANTS") == "1":
        _variant_table("full", VARIANTS)
    else:
        print("  full-width variants: set BENCH_UNET_FULL_VARIANTS=1 (about 90 s each on 2 cores)")


def _float32_report(r: dict) -> None:
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


def _bf16_report(fp32: dict, fp32_out: str, bf16_out: str) -> None:
    from tooncrafter_studio.diffusion.run import cpu_bf16

    support = cpu_bf16.detect()
    print(f"bf16 on this CPU: {'native' if support.native else 'not native'} ({support.reason})")
    if not support.native and os.environ.get("BENCH_UNET_BF16") != "1":
        print("  bf16 forward skipped: emulated here, slower than float32 (BENCH_UNET_BF16=1 runs it anyway)")
        return
    r = measure("full", "channels-last", "bf16", bf16_out)
    if r is None:
        raise RuntimeError("bf16 UNet benchmark subprocess failed")
    import torch

    from tooncrafter_studio.diffusion.checks.precision import relative_error, tolerance

    error = relative_error(torch.load(bf16_out, weights_only=True), torch.load(fp32_out, weights_only=True))
    limit = tolerance("unet", "bf16")
    ratio, original = r["forward_cpu_s"] / fp32["forward_cpu_s"], r["forward_cpu_s"] / ORIGINAL_CPU_S
    print(f"  forward CPU seconds, side by side ({r['threads']} threads; CPU time, not wall: the machine is shared):")
    print(f"    original (fp32)   {ORIGINAL_CPU_S:7.1f} s")
    print(f"    ours fp32         {fp32['forward_cpu_s']:7.1f} s   {fp32['forward_cpu_s'] / ORIGINAL_CPU_S:.2f}x the original")
    print(f"    ours bf16         {r['forward_cpu_s']:7.1f} s   {ratio:.2f}x our fp32 (goal <= {GOAL_BF16_RATIO:.2f}x), "
          f"{original:.2f}x the original (goal <= {GOAL_BF16_ORIGINAL_RATIO:.2f}x)")
    print(f"  bf16 wall {r['forward_s']:.1f} s (load {r['load'][0]:.1f} -> {r['load'][1]:.1f}), weights "
          f"{r['weights_bytes'] / 1e9:.2f} GB, peak RSS {r['peak_bytes'] / 1e9:.2f} GB"
          f"{'' if r['finite'] else ' (NON-FINITE!)'}")
    verdict = "within" if error <= limit else "BEYOND"
    print(f"  bf16 output vs fp32: max |diff| / max |fp32| = {error:.2e} ({verdict} the bf16 UNet tolerance {limit:.0e})")
    if os.environ.get("BENCH_UNET_PROFILE") == "1":
        proc = subprocess.run([sys.executable, "-m", "benchmarks.unet_profile", "bf16", "full"],
                              capture_output=True, text=True, check=False)
        print("Profile of the bf16 forward (benchmarks/unet_profile.py):")
        print("\n".join(ln for ln in proc.stdout.splitlines() if ln.startswith("  ")) or proc.stderr[-400:])


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        rest = sys.argv[i + 1 :] + [""] * 4
        _child(rest[0] or "full", rest[1] or "channels-last", rest[2] or "fp32", rest[3])
    else:
        run()
