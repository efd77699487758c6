"""The Python parts of tools/gpu_check.sh: time full generations per memory mode, and summarise.

    python tools/gpu_check.py generation --out FILE [--dry-run]
    python tools/gpu_check.py summary --out-dir DIR

`generation`: the full 512x320x16 ToonCrafter model with fill-rule weights (no model file), through
the production pipeline placed by each memory mode (fp16 on CUDA), timed at 25 and 50 steps:
encode / denoise / decode seconds, seconds per step, peak GPU memory against the plan's estimate.
`--dry-run`: the same code on the CPU with the reduced model at 64x64 and 1 / 2 steps (what the
test suite runs; no GPU needed). `summary`: one JSON of everything in the results folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FULL_STEPS = (25, 50)
DRY_STEPS = (1, 2)


def _keys(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width]
    start = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    end = np.roll(start, width // 8, axis=1)
    return start, end


def _build(dry: bool) -> Any:
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model

    config = ToonCrafterConfig.reduced() if dry else ToonCrafterConfig.default()
    if dry:
        config = dataclasses.replace(config, latent_size=(8, 8))
    model = build_model(config, device="cpu")
    fill_module(model)
    return model


def time_generations(dry: bool = False, modes: tuple[str, ...] = ("high", "balanced", "low"),
                     dtype_name: str = "fp16") -> dict[str, Any]:
    import torch

    from tooncrafter_studio.diffusion.run import memory
    from tooncrafter_studio.diffusion.run.pipeline import ToonCrafterPipeline

    device = torch.device("cpu" if dry else "cuda")
    steps_list = DRY_STEPS if dry else FULL_STEPS
    clock = time.perf_counter()
    model = _build(dry)
    results: dict[str, Any] = {"device": str(device), "dry_run": dry, "dtype": dtype_name if not dry else "fp32",
                               "build_seconds": round(time.perf_counter() - clock, 2), "runs": []}
    if device.type == "cuda":
        results["device_name"] = torch.cuda.get_device_name(device)
    for mode in modes:
        placement = memory.apply_memory_mode(model, mode, device, memory.weight_dtype(device, dtype_name))
        pipe = ToonCrafterPipeline(model, batch_cfg=placement.batch_cfg, lean_decode=placement.lean_decode,
                                   stage_hook=placement.stage_hook)
        start, end = _keys(*pipe.model_size)
        try:
            for steps in steps_list:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                clock = time.perf_counter()
                out = pipe(start, end, prompt="a ball bounces", steps=steps, seed=0)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - clock
                run = {"mode": mode, "steps": steps, "seconds": round(seconds, 3),
                       "stages": {k: round(v, 3) for k, v in out.timings.items()},
                       "step_seconds": round(out.timings["denoise"] / steps, 4),
                       "frames_ok": bool(torch.isfinite(out.video).all() and out.frames.max() > 0),
                       "frames_shape": list(out.frames.shape)}
                if device.type == "cuda":
                    run["peak_bytes"] = int(torch.cuda.max_memory_allocated())
                    run["planned_bytes"] = memory.estimate_peak_bytes(mode, dtype_name)
                results["runs"].append(run)
                print(f"{mode:9s} {steps:3d} steps: {seconds:7.1f} s ({run['step_seconds']:.3f} s/step)", flush=True)
        finally:
            placement.remove()
            pipe.clear_cache()
            memory.release_cached_memory()
    return results


def summarise(folder: Path) -> dict[str, Any]:
    """Every JSON result in `folder` and the exit codes the shell script recorded, as one object."""
    summary: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name == "summary.json":
            continue
        try:
            summary[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            summary[path.stem] = {"unreadable": path.read_text(encoding="utf-8", errors="replace")[-2000:]}
    codes = folder / "exit_codes.txt"
    if codes.exists():
        summary["exit_codes"] = dict(line.split("=", 1) for line in codes.read_text().split() if "=" in line)
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generation")
    gen.add_argument("--out", required=True)
    gen.add_argument("--dry-run", action="store_true", help="CPU, reduced model, tiny size (for tests)")
    gen.add_argument("--modes", default="high,balanced,low")
    summary = sub.add_parser("summary")
    summary.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "generation":
        result = time_generations(args.dry_run, tuple(args.modes.split(",")))
        Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
        return 0 if all(r["frames_ok"] for r in result["runs"]) else 1
    folder = Path(args.out_dir)
    (folder / "summary.json").write_text(json.dumps(summarise(folder), indent=1), encoding="utf-8")
    print(f"results in {folder / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
