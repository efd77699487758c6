"""One full-width UNet forward at the real latent (B 1, 16 frames, 40x64), float32 on the CPU, weights by
the vectors' fill rule. Measured in a fresh subprocess so that its peak RSS is this forward's alone.

Reference (spec §16): the original code took about 157 s and 11.8 GB on a 2-core machine of this kind.
Goal: at most 0.7x the time and 0.6x the memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ORIGINAL_SECONDS = 157.0
ORIGINAL_PEAK_GB = 11.8


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _child() -> None:
    import torch

    from tooncrafter_studio.diffusion.fill import fill_module
    from tooncrafter_studio.diffusion.unet import UNet3D, keep_cpu_heap_small

    keep_cpu_heap_small()  # what build_model does for a CPU model (the fill's temporaries go back too)
    start = time.perf_counter()
    with torch.device("meta"):
        unet = UNet3D()
    unet = unet.to_empty(device="cpu").eval()
    fill_module(unet, "model.diffusion_model.")
    fill_s = time.perf_counter() - start
    rss_after_fill = _peak_rss_bytes()

    gen = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 16, 40, 64), generator=gen)
    c_concat = torch.zeros_like(x)
    c_concat[:, :, [0, 15]] = torch.randn((1, 4, 2, 40, 64), generator=gen)
    context = torch.randn((1, 333, 1024), generator=gen)
    t = torch.tensor([699])
    fs = torch.tensor([10])

    load_before = os.getloadavg()[0]
    cpu_start = time.process_time()
    start = time.perf_counter()
    with torch.inference_mode():
        out = unet(torch.cat([x, c_concat], dim=1), t, context, fs)
    forward_s = time.perf_counter() - start
    result = {
        "threads": torch.get_num_threads(),
        "fill_s": fill_s,
        "forward_s": forward_s,
        "forward_cpu_s": time.process_time() - cpu_start,
        "load": [load_before, os.getloadavg()[0]],
        "weights_bytes": sum(p.numel() * p.element_size() for p in unet.parameters()),
        "peak_after_fill_bytes": rss_after_fill,
        "peak_bytes": _peak_rss_bytes(),
        "finite": bool(torch.isfinite(out).all()),
        "out_shape": list(out.shape),
    }
    print("RESULT " + json.dumps(result), flush=True)


def run() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_unet", "--child"], capture_output=True, text=True, check=False
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stdout)
        print(proc.stderr)
        raise RuntimeError(f"UNet benchmark subprocess failed (exit {proc.returncode})")
    r = json.loads(line[len("RESULT "):])
    gib, gb = r["peak_bytes"] / 2**30, r["peak_bytes"] / 1e9
    print(f"UNet3D full width, latent 1x4x16x40x64, fp32 CPU, {r['threads']} threads, output {r['out_shape']}"
          f"{'' if r['finite'] else ' (NON-FINITE!)'}")
    print(f"  build on meta + fill rule:  {r['fill_s']:.1f} s (weights {r['weights_bytes'] / 1e9:.2f} GB, "
          f"peak RSS so far {r['peak_after_fill_bytes'] / 1e9:.2f} GB)")
    print(f"  forward:                    {r['forward_s']:.1f} s wall, {r['forward_cpu_s']:.1f} s CPU; "
          f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f} (other processes slow this down)")
    print(f"  time ratio:                 {r['forward_s'] / ORIGINAL_SECONDS:.2f}x the original's "
          f"{ORIGINAL_SECONDS:.0f} s (goal <= 0.70x)")
    print(f"  peak RSS (whole process):   {gib:.2f} GiB = {gb:.2f} GB")
    print(f"  memory ratio:               {gib / ORIGINAL_PEAK_GB:.2f}x (if the original's {ORIGINAL_PEAK_GB} was GiB) / "
          f"{gb / ORIGINAL_PEAK_GB:.2f}x (if GB); goal <= 0.60x")


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        run()
