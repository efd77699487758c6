"""The self-test behind `tooncrafter-studio doctor --selftest`: does this device compute ToonCrafter right,
how fast, and in how much memory? No model file is needed: the weights come from the fill rule.

1. Reduced model (the reference vectors' small configuration) at 64x128 pixels, 16 frames, 4 DDIM
   steps with replayed noise, in every memory mode and precision the device supports, through the
   production `ToonCrafterPipeline` placed by `memory.apply_memory_mode`; each run is compared
   with a float32 CPU run of the same inputs (latent and video) against the tolerances of
   `precision.py`. On the CPU the model runs in float32, and in bf16 too where the CPU has native
   bf16 (AVX-512 BF16 or AMX; run/cpu_bf16.py), as generation does there; the modes differ only in
   batched guidance and the lean decode.
2. Full size on CUDA: one UNet step at 512x320x16 (cond + uncond, as the pipeline runs it in
   that mode) with fill-rule weights per memory mode: seconds per step, peak allocated memory
   against the dry run's predicted peak for that stage, and the SDPA kernel used.
   Full size on the CPU: one full-width UNet forward (batch 1, half a guided step) in float32 and,
   with native bf16, in bf16: CPU and wall seconds, `cpu_bf16_speedup` (float32 CPU seconds over
   bf16's) and the bf16 output's error against float32 (a failure beyond precision.py's tolerance).
   The time estimate before a CPU run reads these (two forwards per step).

The report is a plain dict (`as_json`) with a text rendering (`format_report`).
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..nets.attention import get_sdpa_kernel, sdpa_kernel_used
from ..run import cpu_bf16, memory
from .precision import relative_error, tolerance, torch_dtype

log = logging.getLogger(__name__)

REDUCED_SIZE = (64, 128)  # pixels (height, width), the e2e vector's
REDUCED_STEPS = 4
FULL_LATENT = (40, 64)  # 320 x 512 pixels
PROMPT = "a ball bounces"
Progress = Callable[[str], None]


@dataclass
class SelftestReport:
    environment: dict[str, Any]
    reduced: list[dict[str, Any]] = field(default_factory=list)
    full_size: list[dict[str, Any]] = field(default_factory=list)
    attention: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        bad = [f"reduced {r['mode']} {r['dtype']}: {r.get('error') or 'beyond tolerance'}"
               for r in self.reduced if not r["ok"]]
        bad += [f"full-size {r['mode']} {r['dtype']}: {r['error']}" for r in self.full_size if r.get("error")]
        return bad

    @property
    def cpu_bf16_speedup(self) -> float | None:
        """float32 over bf16 CPU seconds of the full-width forward (None unless both ran on the CPU)."""
        seconds = {r["dtype"]: r.get("forward_cpu_s") for r in self.full_size if r.get("device") == "cpu"}
        if seconds.get("fp32") and seconds.get("bf16"):
            return round(seconds["fp32"] / seconds["bf16"], 3)
        return None

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, "environment": self.environment,
                "attention": self.attention, "reduced": self.reduced, "full_size": self.full_size,
                "cpu_bf16_speedup": self.cpu_bf16_speedup, "skipped": self.skipped}


# --------------------------------------------------------------------------------------------------
# What the device is and supports


def _driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "device": str(device),
        "sdpa_kernel_setting": get_sdpa_kernel(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}", total_bytes=int(total),
                   free_bytes=int(free), bf16=bool(torch.cuda.is_bf16_supported()), driver=_driver_version())
    else:
        env.update(device_name=platform.processor() or platform.machine() or "CPU",
                   cpu_bf16=cpu_bf16.detect().as_json())
    return env


def dtypes_for(device: torch.device) -> list[str]:
    """Precisions generation uses on the device: CUDA fp16, bf16 where supported, and fp32; CPU fp32,
    and bf16 where the CPU runs it natively (its default there)."""
    if device.type != "cuda":
        return ["fp32", "bf16"] if cpu_bf16.detect().native else ["fp32"]
    names = ["fp16"]
    if torch.cuda.is_bf16_supported():
        names.append("bf16")
    return names + ["fp32"]


# --------------------------------------------------------------------------------------------------
# 1. The reduced model through the production pipeline


def _reduced_model() -> torch.nn.Module:
    from .verify_sampler import reduced_filled_model

    return reduced_filled_model()


def reduced_inputs(size: tuple[int, int] = REDUCED_SIZE, steps: int = REDUCED_STEPS,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Two keys in [-1, 1] (a disc that moves on a gradient) and the replayed draws: posterior
    noise, x_T, one per step (the pipeline's order)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for cx in (0.3 * w, 0.7 * w):
        disc = ((xx - cx) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2).astype(np.float32)
        rgb = np.stack([xx / w, yy / h, disc], axis=0) * 2 - 1
        frames.append(torch.from_numpy(rgb.astype(np.float32)))
    gen = torch.Generator().manual_seed(seed)
    lh, lw = h // 8, w // 8
    draws = [torch.randn((16, 4, lh, lw), generator=gen), torch.randn((1, 4, 16, lh, lw), generator=gen)]
    draws += [torch.randn((1, 4, 16, lh, lw), generator=gen) for _ in range(steps)]
    return frames[0], frames[1], draws


def _generate(model: torch.nn.Module, placement: memory.Placement | None, start: torch.Tensor, end: torch.Tensor,
              draws: list[torch.Tensor]) -> Any:
    from ..run.pipeline import ToonCrafterPipeline

    if placement is None:
        pipe = ToonCrafterPipeline(model)
    else:
        pipe = ToonCrafterPipeline(model, batch_cfg=placement.batch_cfg, lean_decode=placement.lean_decode,
                                   stage_hook=placement.stage_hook)
    with torch.inference_mode():
        return pipe.generate(start, end, PROMPT, steps=len(draws) - 2, cfg_scale=7.5, eta=1.0, frame_stride=10,
                             noise=[d.clone() for d in draws])


def run_reduced(device: torch.device, dtype: str, mode: str, reference: Any, inputs: tuple[Any, ...],
                model: torch.nn.Module | None = None) -> dict[str, Any]:
    """One reduced generation on `device` in `dtype` and `mode`, compared with `reference`."""
    row: dict[str, Any] = {"mode": mode, "dtype": dtype, "ok": False}
    work = copy.deepcopy(model if model is not None else _reduced_model())
    placement = memory.apply_memory_mode(work, mode, device, torch_dtype(dtype))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    clock = time.perf_counter()
    try:
        out = _generate(work, placement, *inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            row["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
    except Exception as exc:  # reported, never raised: the rest of the self-test still runs
        log.warning("Self-test run %s %s failed", mode, dtype, exc_info=True)
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    finally:
        placement.remove()
        del work
        memory.release_cached_memory()
    row["seconds"] = round(time.perf_counter() - clock, 3)
    row["latent_error"] = relative_error(out.latent, reference.latent)
    row["video_error"] = relative_error(out.video, reference.video)
    row["latent_limit"] = tolerance("e2e_latent", dtype)
    row["video_limit"] = tolerance("e2e_video", dtype)
    row["finite"] = bool(torch.isfinite(out.video).all() and torch.isfinite(out.latent).all())
    row["ok"] = (row["finite"] and row["latent_error"] <= row["latent_limit"]
                 and row["video_error"] <= row["video_limit"])
    return row


# --------------------------------------------------------------------------------------------------
# 2. One full-size UNet step per memory mode (CUDA)


class _UNetHolder(torch.nn.Module):
    """The UNet under the checkpoint's `model.diffusion_model` name, so memory modes place it as in a run."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        from ..nets.model import DiffusionWrapper

        self.model = DiffusionWrapper(unet)


def filled_full_unet() -> torch.nn.Module:
    from ..nets.unet import UNetConfig
    from .verify_unet import build_filled_unet

    return build_filled_unet(UNetConfig())


def predicted_step_bytes(mode: str, dtype: str) -> int | None:
    """The dry run's peak for the denoise stage in `mode` (memory.DRY_RUN_DENOISE_BYTES_FP16)."""
    figure = memory.DRY_RUN_DENOISE_BYTES_FP16.get(mode)
    if figure is None:
        return None
    return figure * 2 if dtype == "fp32" else figure


def run_full_step(holder: torch.nn.Module, device: torch.device, mode: str, dtype: str,
                  repeats: int = 2) -> dict[str, Any]:
    """Place the filled UNet for `mode`, run a warm-up step and `repeats` timed ones."""
    row: dict[str, Any] = {"mode": mode, "dtype": dtype}
    unet = holder.model.diffusion_model
    placement = memory.apply_memory_mode(holder, mode, device, torch_dtype(dtype))
    try:
        placement.stage_hook("denoise")
        wrapper = holder.model
        param_device = next(unet.parameters()).device  # where the pipeline puts its inputs
        gen = torch.Generator().manual_seed(0)
        h, w = FULL_LATENT
        x = torch.randn((1, 4, 16, h, w), generator=gen).to(param_device)
        c_concat = torch.zeros_like(x)
        context = torch.randn((2, 333, unet.config.context_dim), generator=gen).to(param_device)
        t = torch.full((1,), 699, device=param_device)
        fs = torch.full((1,), 10, device=param_device)

        def step() -> torch.Tensor:
            if placement.batch_cfg:
                b = 2
                return wrapper(torch.cat([x, x]), t.expand(b), c_concat.expand(b, -1, -1, -1, -1), context,
                               fs.expand(b))
            return torch.cat([wrapper(x, t, c_concat, context[i : i + 1], fs) for i in range(2)])

        with torch.inference_mode():
            step()  # warm-up: kernel selection, allocator growth
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            clock = time.perf_counter()
            for _ in range(repeats):
                out = step()
            torch.cuda.synchronize(device)
        row["step_seconds"] = round((time.perf_counter() - clock) / repeats, 4)
        row["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
        row["finite"] = bool(torch.isfinite(out).all())
        if not row["finite"]:
            row["error"] = "non-finite UNet output"
        predicted = predicted_step_bytes(mode, dtype)
        row["predicted_bytes"] = predicted
        if predicted:
            row["peak_over_predicted"] = round(row["peak_bytes"] / predicted, 3)
        row["planned_bytes"] = memory.estimate_peak_bytes(mode, dtype)
    except Exception as exc:
        log.warning("Full-size step in the %s mode failed", mode, exc_info=True)
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        placement.remove()
        memory.release_cached_memory()
    return row


# --------------------------------------------------------------------------------------------------


def run_selftest(device: str | torch.device | None = None, full_size: bool = True,
                 modes: tuple[str, ...] = memory.MODES, dtypes: list[str] | None = None,
                 progress: Progress | None = None, size: tuple[int, int] = REDUCED_SIZE,
                 steps: int = REDUCED_STEPS, cpu_unet: Any = None,
                 cpu_latent: tuple[int, int] = FULL_LATENT) -> SelftestReport:
    """Run the self-test on `device` (default: CUDA when available, else the CPU); `size` and
    `steps` of the reduced runs (the tolerances are set for the defaults). `cpu_unet` (a UNetConfig)
    and `cpu_latent` replace the full width of the CPU's timed forward (tests use the reduced one)."""
    say = progress or (lambda _text: None)
    dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    report = SelftestReport(environment(dev))
    report.environment["reduced_geometry"] = {"height": size[0], "width": size[1], "frames": 16, "steps": steps}
    wanted = dtypes or dtypes_for(dev)
    for name in wanted:
        report.attention[name] = sdpa_kernel_used((16, 5, 2560, 64) if dev.type == "cuda" else (2, 2, 128, 16),
                                                  torch_dtype(name), dev)

    say("reduced model: float32 reference on the CPU")
    model = _reduced_model()
    inputs = reduced_inputs(size, steps)
    reference = _generate(model, None, *inputs)
    for dtype in wanted:
        for mode in modes:
            say(f"reduced model: {mode} mode, {dtype}")
            report.reduced.append(run_reduced(dev, dtype, mode, reference, inputs, model))
    if dev.type != "cuda":
        support = cpu_bf16.detect()
        if "bf16" not in wanted:
            report.skipped.append(f"bf16 runs: this CPU runs in float32 ({support.reason})")
        report.skipped.append("fp16 runs and the full-size step per memory mode (peak memory vs prediction): "
                              "need a CUDA GPU")
        if not full_size:
            report.skipped.append("full-width UNet forward on the CPU: not asked for")
            return report
        report.full_size += run_cpu_forwards([d for d in ("fp32", "bf16") if d in wanted], cpu_unet, cpu_latent, say)
        return report
    if not full_size:
        report.skipped.append("full-size UNet step per mode: not asked for")
        return report
    say("full size: building the UNet with fill-rule weights (1.4 G parameters)")
    holder = _UNetHolder(filled_full_unet())
    for mode in modes:
        say(f"full size: one UNet step in the {mode} mode")
        report.full_size.append(run_full_step(holder, dev, mode, wanted[0]))
    del holder
    memory.release_cached_memory()
    return report


def run_cpu_forwards(dtypes: list[str], config: Any = None, latent: tuple[int, int] = FULL_LATENT,
                     say: Progress | None = None) -> list[dict[str, Any]]:
    """One UNet forward (batch 1, 16 frames; default the full width at 320x512) per precision on the
    CPU, float32 first: CPU and wall seconds, and for bf16 its error against the float32 output. The
    float32 UNet is cast to bf16 in place (one model's memory at a time)."""
    from ..nets.unet import UNetConfig
    from .verify_unet import build_filled_unet

    say = say or (lambda _text: None)
    full = config is None
    say(f"CPU: building the {'full-width ' if full else ''}UNet with fill-rule weights")
    unet = build_filled_unet(config or UNetConfig())
    gen = torch.Generator().manual_seed(0)
    h, w = latent
    x = torch.randn((1, 4, 16, h, w), generator=gen)
    c_concat = torch.zeros_like(x)
    c_concat[:, :, [0, 15]] = torch.randn((1, 4, 2, h, w), generator=gen)
    inputs = (torch.cat([x, c_concat], dim=1), torch.tensor([699]), torch.randn((1, 333, unet.config.context_dim),
                                                                                 generator=gen), torch.tensor([10]))
    rows: list[dict[str, Any]] = []
    outputs: dict[str, torch.Tensor] = {}
    for dtype in dtypes:
        say(f"CPU: one {'full-width ' if full else ''}UNet forward in {dtype} "
            f"({'minutes' if full else 'seconds'} on a few cores)")
        row: dict[str, Any] = {"device": "cpu", "mode": "high", "dtype": dtype, "size": "full" if full else "custom",
                               "latent": [h, w], "threads": torch.get_num_threads()}
        try:
            unet.to(torch_dtype(dtype))
            cpu, wall = time.process_time(), time.perf_counter()
            with torch.inference_mode():
                out = unet(*inputs)
            row["forward_seconds"] = round(time.perf_counter() - wall, 3)
            row["forward_cpu_s"] = round(time.process_time() - cpu, 3)
            row["step_seconds"] = round(2 * row["forward_seconds"], 3)  # cond + uncond: two forwards
            row["finite"] = bool(torch.isfinite(out).all())
            if not row["finite"]:
                row["error"] = "non-finite UNet output"
            outputs[dtype] = out.float()
            if dtype != "fp32" and "fp32" in outputs:
                row["error_vs_fp32"] = relative_error(outputs[dtype], outputs["fp32"])
                row["limit"] = tolerance("unet", dtype)
                if not row["error_vs_fp32"] <= row["limit"]:
                    row["error"] = f"{dtype} output differs from float32 by {row['error_vs_fp32']:.2e}"
        except Exception as exc:  # reported, never raised
            log.warning("CPU forward in %s failed", dtype, exc_info=True)
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    del unet
    return rows


def step_timings(report: SelftestReport) -> dict[str, Any]:
    """What the time estimates of engines/tooncrafter/presets.py read back (selftest_timings.json)."""
    env = report.environment
    steps = [{"device": env["device"].split(":")[0], "mode": r["mode"], "dtype": r["dtype"],
              "step_seconds": r["step_seconds"]} for r in report.full_size
             if "step_seconds" in r and r.get("size", "full") == "full" and not r.get("error")]
    return {"device_name": env.get("device_name"), "torch": env.get("torch"), "steps": steps}


# --------------------------------------------------------------------------------------------------


def _gib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**30:.2f} GiB"


def format_report(report: SelftestReport) -> str:
    env = report.environment
    lines = ["ToonCrafter Studio self-test (paste all of this into a bug report)"]
    lines.append(f"torch {env['torch']}, CUDA build {env['cuda_build'] or 'none'}, cuDNN {env['cudnn'] or '-'}, "
                 f"Python {env['python']}, {env['platform']}")
    if env["device"].startswith("cuda"):
        lines.append(f"device {env['device']}: {env['device_name']} (compute {env['capability']}), "
                     f"{_gib(env['total_bytes'])} total, {_gib(env['free_bytes'])} free, "
                     f"bf16 {'yes' if env['bf16'] else 'no'}, driver {env.get('driver') or 'unknown'}")
    else:
        lines.append(f"device cpu: {env['device_name']}, {env['cpu_threads']} threads of {env['cpu_count']} cores")
        support = env.get("cpu_bf16") or {}
        lines.append(f"cpu bf16: {'native' if support.get('native') else 'not native'} ({support.get('reason', '-')})")
    lines.append("attention (SDPA kernel, setting " + env["sdpa_kernel_setting"] + "): "
                 + ", ".join(f"{k} {v}" for k, v in report.attention.items()))
    geo = env["reduced_geometry"]
    lines.append(f"Reduced model, fill-rule weights, {geo['width']}x{geo['height']}x16, {geo['steps']} steps, "
                 "vs float32 on the CPU "
                 "(max |diff| / max |ref|):")
    lines.append(f"  {'mode':9s} {'dtype':5s} {'latent':>9s} {'video':>9s} {'limit':>7s} {'time':>8s}  result")
    for r in report.reduced:
        if "error" in r:
            lines.append(f"  {r['mode']:9s} {r['dtype']:5s} FAILED: {r['error']}")
            continue
        result = "ok" if r["ok"] else ("NON-FINITE" if not r["finite"] else "BEYOND TOLERANCE")
        lines.append(f"  {r['mode']:9s} {r['dtype']:5s} {r['latent_error']:9.2e} {r['video_error']:9.2e} "
                     f"{r['video_limit']:7.0e} {r['seconds']:7.1f}s  {result}")
    cpu_rows = [r for r in report.full_size if r.get("device") == "cpu"]
    if cpu_rows:
        h, w = cpu_rows[0]["latent"]
        lines.append(f"UNet forward on the CPU ({8 * w}x{8 * h}x16, batch 1 = half a guided step, fill-rule weights, "
                     f"{cpu_rows[0]['threads']} threads):")
        lines.append(f"  {'dtype':5s} {'CPU s':>8s} {'wall s':>8s} {'s/step':>8s} {'vs fp32':>9s} {'limit':>7s}")
        for r in cpu_rows:
            if "forward_cpu_s" not in r:
                lines.append(f"  {r['dtype']:5s} FAILED: {r['error']}")
                continue
            error = f"{r['error_vs_fp32']:9.2e} {r['limit']:7.0e}" if "error_vs_fp32" in r else f"{'-':>9s} {'-':>7s}"
            lines.append(f"  {r['dtype']:5s} {r['forward_cpu_s']:8.1f} {r['forward_seconds']:8.1f} {r['step_seconds']:8.1f} "
                         f"{error}" + (f"  {r['error']}" if r.get("error") else ""))
        if report.cpu_bf16_speedup is not None:
            lines.append(f"  cpu_bf16_speedup: {report.cpu_bf16_speedup:.2f}x (float32 CPU seconds / bf16's)")
    gpu_rows = [r for r in report.full_size if r.get("device") != "cpu"]
    if gpu_rows:
        lines.append("Full-size UNet step (512x320x16, cond + uncond, fill-rule weights):")
        lines.append(f"  {'mode':9s} {'dtype':5s} {'s/step':>8s} {'peak':>11s} {'predicted':>11s} {'ratio':>6s}")
        for r in gpu_rows:
            if "error" in r and "step_seconds" not in r:
                lines.append(f"  {r['mode']:9s} {r['dtype']:5s} FAILED: {r['error']}")
                continue
            ratio = f"{r['peak_over_predicted']:.2f}" if r.get("peak_over_predicted") else "-"
            lines.append(f"  {r['mode']:9s} {r['dtype']:5s} {r['step_seconds']:8.3f} {_gib(r['peak_bytes']):>11s} "
                         f"{_gib(r['predicted_bytes']):>11s} {ratio:>6s}" + (f"  {r['error']}" if r.get("error") else ""))
    for text in report.skipped:
        lines.append(f"skipped: {text}")
    lines.append("RESULT: PASS" if report.passed else "RESULT: FAIL (" + "; ".join(report.failures) + ")")
    return "\n".join(lines)
