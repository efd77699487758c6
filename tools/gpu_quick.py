"""The Python part of `tools/gpu_check.sh --quick`: one short run on a GPU, its JSON written after every step.

    python tools/gpu_quick.py --out FILE [--dry-run] [--steps 8]

Steps (each time-boxed by the caller's budget, each recorded as {"ok": ..., "seconds": ...} even
when it fails, so a run cut short still says what it saw):
  env         torch, CUDA, the card; stops here when `torch.cuda.is_available()` is False
  attention   each SDPA kernel (auto, flash, efficient, cudnn, math) on the model's real attention
              shapes: which kernel ran (flash and cuDNN give way per call), seconds, errors
  engine      full-size engine runs (8 steps, 512x320x16, fill-rule weights) in each memory mode:
              peak allocated and reserved memory, s/step, the CUDA context, what is left after unload
  cancel      the memory held after a cancelled run, and after the engine's release_gpu()
  fp32_decode a forced float32 redo of the decode (as after an fp16 overflow): its peak vs the plan
  oom_retry   a real out-of-memory under a memory cap: the high mode fails, the retry runs balanced
  pinned_transfer  host-to-device bandwidth, pageable vs pinned (the low mode's streamed blocks)
  selftest    the reduced-model self-test in fp16 / bf16 / fp32 (the engine's numbers vs float32)
`--dry-run`: the same code on the CPU with the tiny dry-run model and one step (what `make test`
runs); the GPU-only figures are then absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("high", "balanced", "low")
KERNELS = ("auto", "flash", "efficient", "cudnn", "math")
# (name, q shape, k tokens, dtype): the model's attention calls at 512x320x16, fp16 weights
ATTENTION_SHAPES = (
    ("unet spatial self, 40x64", (2 * 16, 5, 2560, 64), 2560, "float16"),
    ("unet temporal, 16 frames", (2 * 2560, 5, 16, 64), 16, "float16"),
    ("unet cross, text + image", (2 * 16, 5, 2560, 64), 77, "float16"),
    ("resampler (float32)", (1, 12, 16, 64), 273, "float32"),
    ("vae mid-block, head 512", (16, 1, 2560, 512), 2560, "float16"),
    ("vae fusion, 1/4 resolution", (1, 8, 16 * 80 * 128, 64), 2 * 80 * 128, "float16"),
)
DRY_ATTENTION_SHAPES = (("tiny self", (2, 2, 64, 16), 64, "float32"),)


class Report:
    """The JSON file, rewritten after every step (a run killed by its time limit keeps what it had)."""

    def __init__(self, path: Path, dry: bool) -> None:
        self.path = path
        self.data: dict[str, Any] = {"dry_run": dry, "started": time.time(), "steps": {}}
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        clock = time.perf_counter()
        try:
            result = {"ok": True, **run()}
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": traceback.format_exc()[-4000:]}
        result["seconds"] = round(time.perf_counter() - clock, 2)
        self.data["steps"][name] = result
        self.write()
        print(f"== {name}: {'ok' if result['ok'] else 'FAILED ' + result['error'][:200]} ({result['seconds']} s)",
              flush=True)
        return result


def _keys(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width]
    start = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    return start, np.roll(start, width // 8, axis=1)


def _memory(torch: Any) -> dict[str, int]:
    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"allocated": int(torch.cuda.memory_allocated()), "reserved": int(torch.cuda.memory_reserved()),
            "used_on_card": int(total - free)}


class Quick:
    def __init__(self, dry: bool, steps: int) -> None:
        import torch

        self.torch = torch
        self.dry = dry
        self.steps = 1 if dry else steps
        self.device = "cpu" if dry else "cuda"
        self._model: Any = None

    # -- the model (fill-rule weights: no file, deterministic) -------------------------------------
    def model(self) -> Any:
        if self._model is None:
            from tooncrafter_studio.cli.dryrun import dry_run_config
            from tooncrafter_studio.diffusion.checks.fill import fill_module
            from tooncrafter_studio.diffusion.nets.model import build_model

            self._model = build_model(dry_run_config("tiny" if self.dry else "full"), device="cpu")
            fill_module(self._model)
        return self._model

    def engine(self, **options: Any) -> Any:
        from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine

        return ToonCrafterEngine(model=self.model(), device=self.device, trim_keys=False, colour_match=False,
                                 **options)

    def request(self, **params: Any) -> Any:
        from tooncrafter_studio.engines.base import InterpolationRequest

        size = (64, 64) if self.dry else (320, 512)
        return InterpolationRequest(*_keys(*size), [0.5], params={"steps": self.steps, **params}, seed=1)

    # -- steps ---------------------------------------------------------------------------------------
    def env(self) -> dict[str, Any]:
        torch = self.torch
        info: dict[str, Any] = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                                "cuda_available": bool(torch.cuda.is_available()), "python": sys.version.split()[0]}
        if info["cuda_available"]:
            props = torch.cuda.get_device_properties(0)
            info.update(name=props.name, total_bytes=int(props.total_memory),
                        capability=f"{props.major}.{props.minor}", bf16=bool(torch.cuda.is_bf16_supported()))
            torch.zeros(1, device="cuda")
            info["context_bytes"] = _memory(torch)["used_on_card"] - int(torch.cuda.memory_reserved())
        return info

    def attention(self) -> dict[str, Any]:
        torch = self.torch
        from tooncrafter_studio.diffusion.nets import attention as attn

        rows = []
        kernels = ("auto", "math") if self.dry else KERNELS
        for name, shape, keys, dtype_name in (DRY_ATTENTION_SHAPES if self.dry else ATTENTION_SHAPES):
            dtype = getattr(torch, dtype_name)
            q = torch.randn(shape, device=self.device, dtype=dtype)
            k = torch.randn((*shape[:2], keys, shape[3]), device=self.device, dtype=dtype)
            for kernel in kernels:
                row: dict[str, Any] = {"shape": name, "kernel": kernel,
                                       "runs": attn.kernel_for_call(kernel, dtype, shape[-1], self.device)}
                attn.set_sdpa_kernel(kernel)
                try:
                    if self.device == "cuda":
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    clock = time.perf_counter()
                    attn.attention(q, k, k)
                    if self.device == "cuda":
                        torch.cuda.synchronize()
                        row["peak_bytes"] = int(torch.cuda.max_memory_allocated())
                    row["seconds"] = round(time.perf_counter() - clock, 4)
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                finally:
                    attn.set_sdpa_kernel("auto")
                rows.append(row)
            del q, k
        return {"calls": rows, "failed": [r for r in rows if "error" in r]}

    def engine_runs(self) -> dict[str, Any]:
        torch = self.torch
        runs = []
        for mode in (("high",) if self.dry else MODES):
            engine = self.engine(memory=mode)
            if self.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            clock = time.perf_counter()
            row: dict[str, Any] = {"mode": mode}
            try:
                result = engine.interpolate(self.request())
                if self.device == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - clock
                row.update(seconds=round(seconds, 2), memory_mode=result.info["memory_mode"],
                           frames_ok=bool(np.asarray(result.frames[0]).max() > 0))
                if self.device == "cuda":
                    row.update(peak_allocated=int(torch.cuda.max_memory_allocated()),
                               peak_reserved=int(torch.cuda.max_memory_reserved()))
                    from tooncrafter_studio.diffusion.run import memory

                    row["plan_bytes"] = memory.estimate_peak_bytes(mode, "fp16")
                row["held_after_run"] = _memory(torch)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
            engine.unload()
            row["left_after_unload"] = _memory(torch)
            runs.append(row)
        timed = [r for r in runs if "seconds" in r]
        for r in timed:  # s/step: the run's time over its steps (encode and decode included, one pass)
            r["seconds_per_step_upper"] = round(r["seconds"] / self.steps, 3)
        return {"steps": self.steps, "runs": runs}

    def cancel(self) -> dict[str, Any]:
        from tooncrafter_studio.core.errors import Cancelled
        from tooncrafter_studio.core.progress import CancelToken

        engine = self.engine(memory="balanced" if not self.dry else "auto")
        token = CancelToken()

        def on_progress(event: Any) -> None:
            if event.stage == "denoise" and event.done >= 1:
                token.cancel()

        cancelled = False
        try:
            engine.interpolate(self.request(steps=max(self.steps, 2)), on_progress, token)
        except Cancelled:
            cancelled = True
        held = _memory(self.torch)
        engine.release_gpu()
        released = _memory(self.torch)
        engine.unload()
        return {"cancelled": cancelled, "held_after_cancel": held, "after_release_gpu": released,
                "after_unload": _memory(self.torch)}

    def fp32_decode(self) -> dict[str, Any]:
        if self.dry:
            return {"skipped": "on the CPU the model runs in float32: there is no half-precision decode to redo"}
        from unittest import mock

        from tooncrafter_studio.diffusion.run import memory, pipeline

        calls = {"n": 0}
        original = pipeline._all_finite

        def overflow_once(tensor: Any) -> bool:
            calls["n"] += 1
            return calls["n"] > 1 and original(tensor)

        engine = self.engine(memory="balanced" if not self.dry else "auto")
        if self.device == "cuda":
            self.torch.cuda.reset_peak_memory_stats()
        with mock.patch.object(pipeline, "_all_finite", overflow_once):
            result = engine.interpolate(self.request())
        row: dict[str, Any] = {"finite_checks": calls["n"], "frames_ok": bool(np.asarray(result.frames[0]).max() > 0)}
        if self.device == "cuda":
            row.update(peak_allocated=int(self.torch.cuda.max_memory_allocated()),
                       plan_bytes=memory.redecode_plan_bytes("balanced", "fp16"))
        engine.unload()
        return row

    def oom_retry(self) -> dict[str, Any]:
        if self.dry:
            return {"skipped": "needs a real allocator"}
        from tooncrafter_studio.diffusion.run import memory

        torch = self.torch
        total = torch.cuda.get_device_properties(0).total_memory
        # room for the balanced mode, not for the high one
        cap = (memory.table_peak_bytes("balanced") + memory.table_peak_bytes("high")) / 2
        events: list[str] = []
        torch.cuda.set_per_process_memory_fraction(cap / total)
        try:
            engine = self.engine(memory="high")
            result = engine.interpolate(self.request(), lambda e: events.append(e.message) if e.stage == "load" else None)
            row = {"cap_bytes": int(cap), "memory_mode": result.info["memory_mode"],
                   "retried": [m for m in events if "retrying" in m]}
            engine.unload()
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
        row["left_after_unload"] = _memory(torch)
        return row

    def pinned_transfer(self) -> dict[str, Any]:
        """Host-to-device bandwidth of the low mode's streaming (~2.8 GB of UNet blocks per UNet call):
        pageable against pinned memory, 256 MiB copies."""
        if self.dry:
            return {"skipped": "needs CUDA"}
        torch = self.torch
        rows = {}
        for name, tensor in (("pageable", torch.empty(128 * 1024**2, dtype=torch.float16)),
                             ("pinned", torch.empty(128 * 1024**2, dtype=torch.float16).pin_memory())):
            tensor.to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            clock = time.perf_counter()
            for _ in range(5):
                tensor.to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - clock) / 5
            rows[name] = {"gb_per_s": round(tensor.nbytes / seconds / 1e9, 2),
                          "seconds_per_2_8_gb": round(2.8e9 / (tensor.nbytes / seconds), 3)}
        rows["speedup"] = round(rows["pinned"]["gb_per_s"] / rows["pageable"]["gb_per_s"], 2)
        return rows

    def selftest(self) -> dict[str, Any]:
        from tooncrafter_studio.diffusion.checks import selftest

        if self.dry:
            report = selftest.run_selftest(self.device, full_size=False, modes=("high",), size=(64, 64), steps=1)
        else:
            report = selftest.run_selftest(self.device, full_size=False)
        return {"passed": report.passed, "failures": report.failures, "report": report.as_json()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, one step (what make test runs)")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    report = Report(Path(args.out), args.dry_run)
    try:
        import torch
    except ImportError as exc:
        report.data["steps"]["env"] = {"ok": False, "error": f"torch is not installed: {exc}"}
        report.write()
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        report.step("env", lambda: {"cuda_available": False})
        report.data["steps"]["env"].update(ok=False, error="torch.cuda.is_available() is False")
        report.write()
        return 2
    quick = Quick(args.dry_run, args.steps)
    report.step("env", quick.env)
    for name, step in (("attention", quick.attention), ("engine", quick.engine_runs), ("cancel", quick.cancel),
                       ("fp32_decode", quick.fp32_decode), ("oom_retry", quick.oom_retry),
                       ("pinned_transfer", quick.pinned_transfer), ("selftest", quick.selftest)):
        report.step(name, step)
    report.data["finished"] = time.time()
    report.write()
    return 0 if all(s.get("ok") for s in report.data["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
