"""GPU memory of one full-size ToonCrafter generation (512x320, 16 frames), per memory mode.

Measured by the device-independent trace (diffusion/memtrace.py): the model runs on PyTorch's meta
device and every live tensor storage is counted, plus the weights each mode keeps on the GPU. The
'original' row is the calibration: the official code's layout (fp32 weights resident with
autocast's fp16 copies, materialised UNet attention, no offload), which its README puts at ~24 GB.
"""

from __future__ import annotations

import time

GiB = 1024**3
GOALS = {"balanced": 8 * 10**9, "low": 5 * 10**9}


def run() -> None:
    from tooncrafter_studio.diffusion import memory
    from tooncrafter_studio.diffusion.memtrace import trace_generation

    print(f"{'mode':9s} {'peak GiB':>9s} {'encode':>8s} {'unet':>8s} {'decode':>8s} {'planned':>8s}  "
          f"{'goal':>8s} {'trace s':>8s}")
    for mode in ("high", "balanced", "low", "original"):
        start = time.perf_counter()
        result = trace_generation(mode, "fp16")
        seconds = time.perf_counter() - start
        s = result.stages
        planned = (memory.estimate_peak_bytes(mode) if mode in memory.MODES
                   else memory.with_overhead(result.peak_bytes))
        goal = GOALS.get(mode)
        verdict = "" if goal is None else ("met" if result.peak_bytes <= goal else "MISSED")
        print(f"{mode:9s} {result.peak_bytes / GiB:9.2f} {s['encode'] / GiB:8.2f} {s['unet step'] / GiB:8.2f} "
              f"{s['decode'] / GiB:8.2f} {planned / GiB:8.2f}  {verdict:>8s} {seconds:8.1f}")
        if mode == "original":
            print(f"calibration: original layout traced at {result.peak_bytes / 1e9:.1f} GB "
                  f"({planned / 1e9:.1f} GB with the allocator/context allowance) vs ~24 GB reported; "
                  f"ratio balanced/original {memory.TRACED_PEAK_BYTES_FP16['balanced'] / result.peak_bytes:.2f}, "
                  f"low/original {memory.TRACED_PEAK_BYTES_FP16['low'] / result.peak_bytes:.2f}")
    print("'planned' = traced peak + 10% + 0.6 GiB (allocator, CUDA context): what mode choice compares "
          "with free VRAM.")


if __name__ == "__main__":
    run()
