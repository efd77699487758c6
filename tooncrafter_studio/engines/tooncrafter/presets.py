"""Speed presets of the ToonCrafter engine and how long a run would take on this device.

Presets only choose the number of DDIM steps; the steps always sit on the original's
'uniform_trailing' spacing (the last one at t = 999), so a draft is the same sampler with larger
strides, not a different schedule:

    draft   15 steps  (~3x faster; for judging timing and poses, softer detail)
    final   50 steps  (the original's default)

`--steps` (or the inspector's Steps box) still overrides a preset.

The time estimate is a per-device seconds-per-step model, with what it is based on stated:
1. measured: `tooncrafter-studio doctor --selftest` on this machine stores the seconds of one
   full-size UNet step per device, memory mode and precision (`selftest_timings.json` in the user
   cache folder); when it matches the run, that figure is used.
   On the CPU the self-test times one full-width forward per precision (a step is two of them).
2. CPU: the full-width UNet forward measured in `benchmarks/bench_unet.py`, in the precision the run
   will use (bf16 where the CPU has AVX-512 BF16 or AMX, `diffusion/run/cpu_bf16.py`; else float32):
   CPU-seconds per forward on the 2-core reference machine, two forwards per guided step, divided by
   the cores.
3. CUDA without a measurement: the UNet step's arithmetic (2 x 11.48 TFLOP at 512x320x16,
   counted with torch's FlopCounterMode) over a nominal fp16 throughput of the card found in a
   small table (or a mid-range default), at an assumed 35 % efficiency. A rough guide only.
Nothing here imports torch: the inspector asks for estimates while it draws (the CPU's bf16 is read
from its flags, `cpu_bf16.flags_support`; where the system gives none, the float32 figure is used).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import InputError
from ...core.paths import user_cache_dir
from ...diffusion.run import cpu_bf16

log = logging.getLogger(__name__)

PRESETS: dict[str, int] = {"draft": 15, "final": 50}
PRESET_CHOICES = tuple(PRESETS)
DEFAULT_PRESET = "final"

TIMINGS_FILE = "selftest_timings.json"
UNET_FORWARD_TFLOP = 11.48  # one full-size forward, batch 1, 16 frames at 40x64 latent (FlopCounterMode)
# bench_unet.py, full-width forward, CPU seconds on the 2-core reference machine: float32 (165.0 on the
# quiet reference run; 162.3 beside bf16), bf16 66.6 (issue 25: a Xeon with AMX, 2 threads, loaded machine).
CPU_FORWARD_CPU_SECONDS: dict[str, float] = {"fp32": 165.0, "bf16": 66.6}
CPU_FIXED_SECONDS = 600.0  # encoders + two-pass VAE decode at full size on 2 cores, float32 (about 10 min)
GPU_FIXED_SECONDS = 6.0  # encoders + decode on a GPU (plus the weights' first upload)
GPU_EFFICIENCY = 0.35
# Nominal dense fp16 tensor throughput (TFLOP/s) by a fragment of the device name; first match wins.
GPU_FP16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 990.0), ("H100", 990.0), ("A100", 312.0), ("L40", 181.0), ("A6000", 155.0),
    ("4090", 165.0), ("4080", 97.0), ("4070", 58.0), ("4060", 30.0),
    ("3090", 71.0), ("3080", 59.0), ("3070", 40.0), ("3060", 25.0),
    ("2080", 40.0), ("2070", 30.0), ("2060", 26.0), ("T4", 65.0), ("V100", 125.0),
)
DEFAULT_GPU_TFLOPS = 60.0  # a mid-range card


def steps_for(preset: str | None, steps: int | None = None) -> int:
    """Explicit steps win; otherwise the preset's (default: final)."""
    if steps is not None:
        return int(steps)
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise InputError(f"Unknown preset '{name}': use one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def preset_of(steps: int) -> str | None:
    """The preset whose step count this is, or None for a custom count."""
    return next((name for name, n in PRESETS.items() if n == steps), None)


@dataclass(frozen=True)
class TimeEstimate:
    seconds: float  # the whole run (every pass)
    step_seconds: float
    fixed_seconds: float  # per pass: encoders and decode
    basis: str  # what the figure comes from, in words

    def describe(self) -> str:
        return f"about {format_duration(self.seconds)} ({self.basis})"


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def timings_path() -> Path:
    return user_cache_dir() / TIMINGS_FILE


def load_measured() -> dict[str, Any]:
    """The step timings `doctor --selftest` stored ({} when none or unreadable)."""
    path = timings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _measured_step(measured: dict[str, Any], device: str, mode: str | None, dtype: str) -> tuple[float, str] | None:
    entries = [e for e in measured.get("steps", []) if isinstance(e, dict) and e.get("device") == device
               and e.get("dtype") == dtype and isinstance(e.get("step_seconds"), int | float)]
    if not entries:
        return None
    chosen = next((e for e in entries if e.get("mode") == mode), None) or min(entries, key=lambda e: e["step_seconds"])
    name = measured.get("device_name") or device
    return float(chosen["step_seconds"]), f"measured by doctor --selftest on {name}, {chosen.get('mode')} mode"


def gpu_tflops(name: str | None) -> tuple[float, str]:
    for fragment, tflops in GPU_FP16_TFLOPS:
        if name and fragment.lower() in name.lower():
            return tflops, fragment
    return DEFAULT_GPU_TFLOPS, ""


def estimate_run(steps: int, device: str = "cuda", passes: int = 1, mode: str | None = None, dtype: str = "fp16",
                 gpu_name: str | None = None, cpu_cores: int | None = None,
                 measured: dict[str, Any] | None = None) -> TimeEstimate:
    """Seconds a generation of `passes` model passes at `steps` steps would take on `device`."""
    if steps < 1 or passes < 1:
        raise InputError("A time estimate needs at least one step and one pass.")
    measured = load_measured() if measured is None else measured
    if device == "cpu":
        dtype = cpu_run_dtype(dtype)
    hit = _measured_step(measured, device, mode, dtype)
    if hit is not None:
        step, basis = hit
        fixed = CPU_FIXED_SECONDS if device == "cpu" else GPU_FIXED_SECONDS
        if device == "cpu":
            basis += f", {dtype}"
    elif device == "cpu":
        cores = max(1, cpu_cores or os.cpu_count() or 1)
        step = 2 * CPU_FORWARD_CPU_SECONDS[dtype] / cores
        fixed = CPU_FIXED_SECONDS * 2 / cores
        basis = (f"CPU, {dtype}: the benchmark's {CPU_FORWARD_CPU_SECONDS[dtype]:g} CPU-s per UNet forward spread "
                 f"over {cores} cores; run doctor --selftest to measure this machine")
    else:
        tflops, matched = gpu_tflops(gpu_name or measured.get("device_name"))
        step = 2 * UNET_FORWARD_TFLOP / (tflops * GPU_EFFICIENCY)
        fixed = GPU_FIXED_SECONDS
        card = f"{matched} class" if matched else "a mid-range GPU"
        basis = f"rough: {card} at nominal fp16 speed, not measured; run doctor --selftest to measure"
    return TimeEstimate(passes * (steps * step + fixed), step, fixed, basis)


def cpu_run_dtype(requested: str | None) -> str:
    """The precision a CPU run will use, without torch: bf16 where the CPU's flags show native bf16
    (none known: float32, the slower and safer guess), or what was asked."""
    from ...diffusion.run.memory import resolve_dtype

    support = cpu_bf16.flags_support()
    return resolve_dtype("cpu", requested, cpu_native_bf16=bool(support and support.native))


def _gpu_name() -> str | None:
    """The first CUDA device's name (imports torch: only for runs that are about to use it)."""
    try:
        from ...diffusion.run import memory

        devices = memory.torch_environment()["devices"]
    except Exception:  # no torch, no driver: the estimate says it is rough
        return None
    return devices[0]["name"] if devices else None


def describe_plan(params: dict[str, Any], times: list[float]) -> str:
    """One line for the command line before a ToonCrafter run: steps, preset, passes, time."""
    from .timing import plan_passes

    steps = int(params.get("steps") or PRESETS[DEFAULT_PRESET])
    device = str(params.get("device") or "cuda")
    dtype = str(params.get("dtype") or "fp16")
    mode = params.get("memory") if params.get("memory") not in (None, "auto") else None
    passes = len(plan_passes(times))
    estimate = estimate_run(steps, device, passes, mode, dtype, _gpu_name() if device == "cuda" else None)
    label = preset_of(steps) or "custom"
    plural = "es" if passes > 1 else ""
    return f"ToonCrafter: {steps} steps ({label}), {passes} pass{plural} on {device}: {estimate.describe()}"
