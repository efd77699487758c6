"""GPU memory of one full-size ToonCrafter generation (512x320, 16 frames), per memory mode and precision.

Measured by the dry run (diffusion/checks/dryrun.py, cli/dryrun.py): the engine's own CUDA
path on fake tensors, with every live storage on the device counted, weights included, as they
come and go. Compared with the memory table (`memory.DRY_RUN_PEAK_BYTES_FP16`, what `doctor
--estimate-vram` and the mode choice use) and with the figures of the former meta-device trace
(memtrace.py, removed: a separate model of the run rather than the run).
"""

from __future__ import annotations

GiB = 1024**3
GOALS = {"balanced": 8 * 10**9, "low": 5 * 10**9}
# The former trace's fp16 peaks (GiB): what the table said before the dry run replaced it.
OLD_TRACE_GIB = {"high": 10.61, "balanced": 3.68, "low": 2.31}


def run() -> None:
    from tooncrafter_studio.cli.dryrun import dry_run
    from tooncrafter_studio.diffusion.run import memory

    print(f"{'mode':9s} {'dtype':5s} {'peak GiB':>9s} {'text':>6s} {'image':>6s} {'vae_enc':>7s} {'denoise':>7s} "
          f"{'decode':>7s} {'table':>6s} {'old trace':>9s} {'vs old':>7s} {'goal':>6s} {'cpu s':>6s}")
    for mode in memory.MODES:
        for dtype in ("fp16", "bf16"):
            report = dry_run(mode, dtype)
            if report.error is not None or report.violations or report.misplaced:
                print(f"{mode:9s} {dtype:5s} FAILED: {report.error!r} {report.violations[:3]} {report.misplaced[:3]}")
                continue
            s = {k: v / GiB for k, v in report.stage_peaks.items()}
            peak = report.peak_bytes / GiB
            table = memory.DRY_RUN_PEAK_BYTES_FP16[mode] / GiB
            old = OLD_TRACE_GIB[mode]
            goal = GOALS.get(mode)
            verdict = "" if goal is None else ("met" if report.peak_bytes <= goal else "MISSED")
            print(f"{mode:9s} {dtype:5s} {peak:9.2f} {s['text']:6.2f} {s['image']:6.2f} {s['vae_encode']:7.2f} "
                  f"{s['denoise']:7.2f} {s['decode']:7.2f} {table:6.2f} {old:9.2f} {peak / old:6.2f}x "
                  f"{verdict:>6s} {report.cpu_seconds:6.0f}")
    print("peak = live device storage at its highest (weights and activations), one denoising step; "
          "'table' is what mode choice plans with before adding 10% + 0.6 GiB for the allocator and the "
          "CUDA context; 'old trace' the former meta-device model of the run.")


if __name__ == "__main__":
    run()
