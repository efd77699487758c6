"""`tooncrafter-studio doctor`: what this machine has for ToonCrafter, and how much GPU memory it needs.

    doctor                       versions, torch/CUDA, devices and free VRAM, model found or not
    doctor --estimate-vram       peak GPU memory per memory mode: the engine's own CUDA path dry-run on
                                 fake tensors (one 512x320x16 generation, one step; runs anywhere,
                                 about a minute per mode on two cores)
           [--memory MODE] [--dtype fp16|bf16|fp32] [--json]
    doctor --selftest            run the reduced model in every memory mode and precision this device
                                 supports against float32 on the CPU, then (CUDA) one full-size UNet
           [--device cuda|cpu]   step per mode: speed, peak memory vs prediction, attention kernel;
           [--json]              no model file needed; exit status 1 when a check fails
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from ..core.errors import InputError
from ..core.paths import find_model, user_log_dir
from ..setup.engine_env import ready_env

MODES = ("high", "balanced", "low")
PACKAGES = ("tooncrafter-studio", "numpy", "opencv-python-headless", "pillow", "PySide6-Essentials", "torch",
            "torchvision", "open_clip_torch", "safetensors", "xformers")
GiB = 1024**3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="check this machine (GPU, packages, model) and estimate GPU memory",
                              description="Show what this machine offers for ToonCrafter, or estimate GPU memory.")
    p.add_argument("--estimate-vram", action="store_true",
                   help="dry-run one full-size generation on a simulated GPU and print its peak memory per stage")
    p.add_argument("--memory", choices=MODES,
                   help="memory mode to dry-run (default: all modes; balanced with --json)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16", help="weight precision (default fp16)")
    p.add_argument("--selftest", action="store_true",
                   help="check this device's numbers, speed and memory with built-in test weights (no model file)")
    p.add_argument("--device", choices=("cuda", "cpu"), help="device for --selftest (default: CUDA when present)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", help="model file or folder to look for (default: the usual places)")
    p.set_defaults(handler=run_doctor)


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _gib(nbytes: float) -> str:
    return f"{nbytes / GiB:.2f} GiB"


def run_doctor(args: argparse.Namespace) -> int:
    if args.selftest:
        return _selftest(args)
    if args.device:
        raise InputError("--device is used with --selftest.")
    if args.estimate_vram:
        return _estimate(args)
    if args.memory:
        raise InputError("--memory is used with --estimate-vram.")
    return _diagnose(args)


def _torch_missing() -> bool:
    return importlib.util.find_spec("torch") is None


def _estimate(args: argparse.Namespace) -> int:
    if _torch_missing():
        raise InputError("The memory estimate needs PyTorch: install the 'tooncrafter' extra.")
    from ..diffusion.run import memory
    from . import dryrun

    modes = [args.memory] if args.memory else (["balanced"] if args.json else list(MODES))
    if args.json:
        report = _dry_run(dryrun, modes[0], args.dtype)
        print(json.dumps(report.as_json()))
        return 0
    print(f"GPU memory of one 512x320, 16-frame generation ({args.dtype} weights), from a dry run of the engine's "
          "CUDA path on fake tensors: peak of live device memory, weights included; allocator and CUDA context "
          "not included.")
    print(f"  {'mode':9s} {'peak':>10s} {'text':>10s} {'image':>10s} {'vae enc':>10s} {'denoise':>10s} "
          f"{'decode':>10s} {'table':>10s} {'plan with':>10s}")
    for mode in modes:
        report = _dry_run(dryrun, mode, args.dtype)
        s = report.stage_peaks
        print(f"  {mode:9s} {_gib(report.peak_bytes):>10s} {_gib(s.get('text', 0)):>10s} {_gib(s.get('image', 0)):>10s} "
              f"{_gib(s.get('vae_encode', 0)):>10s} {_gib(s.get('denoise', 0)):>10s} {_gib(s.get('decode', 0)):>10s} "
              f"{_gib(memory.table_peak_bytes(mode, args.dtype)):>10s} "
              f"{_gib(memory.estimate_peak_bytes(mode, args.dtype)):>10s}")
    print("'table' is the peak stored in the program that the memory-mode choice uses (it should match 'peak'); "
          "'plan with' adds the allowance for allocator overhead and the CUDA context.")
    if args.dtype != "fp32":
        print("A half-precision decode that overflows is done again in float32: "
              + ", ".join(f"{m} {_gib(memory.redecode_plan_bytes(m, args.dtype) or 0)}" for m in modes)
              + " with the allowance (piece by piece when that does not fit).")
    return 0


def _dry_run(dryrun, mode: str, dtype: str):  # noqa: ANN001, ANN202
    report = dryrun.dry_run(mode, dtype, card="80gb")  # a card every mode fits on
    if report.error is not None:
        raise report.error
    return report


def _selftest(args: argparse.Namespace) -> int:
    if _torch_missing():
        raise InputError("The self-test needs PyTorch: install the 'tooncrafter' extra.")
    from ..core.fsio import atomic_write_text
    from ..diffusion.checks import selftest
    from ..engines.tooncrafter import presets

    if args.device == "cuda":
        from ..diffusion.run import memory

        if not memory.cuda_available():
            raise InputError("--device cuda: PyTorch sees no CUDA GPU here; run the self-test with --device cpu.")

    def say(text: str) -> None:
        if not args.json:
            print(f"... {text}", file=sys.stderr, flush=True)

    report = selftest.run_selftest(args.device, progress=say)
    timings = selftest.step_timings(report)
    if timings["steps"]:  # the time estimates of the presets use these
        try:
            atomic_write_text(presets.timings_path(), json.dumps(timings, indent=1))
        except Exception as exc:  # a read-only cache folder must not fail the test
            say(f"could not store the step timings: {exc}")
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(selftest.format_report(report))
    return 0 if report.passed else 1


def _diagnose(args: argparse.Namespace) -> int:
    report = _diagnosis(args.model)
    if args.json:
        print(json.dumps(report))
    else:
        _print_diagnosis(report)
    return 0


def _diagnosis(model: str | None) -> dict:
    """What this machine has for ToonCrafter, as data (`--json` prints it, the text report reads it)."""
    engine_env = ready_env()
    report: dict = {
        "version": _version("tooncrafter-studio"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # a farm task's failure leaves its traceback here (exit 1): the service user's folder, not yours
        "command_log": str(user_log_dir() / "cli.log"),
        "packages": {name: _version(name) for name in PACKAGES[1:]},
        "engine_env": engine_env.description if engine_env is not None else None,
        "torch": None,
        "devices": [],
    }
    if not _torch_missing():
        from ..diffusion.run import memory

        env = memory.torch_environment()
        report["torch"] = {key: env[key] for key in ("torch", "cuda_build", "attention_backends")}
        from ..diffusion.run import cpu_bf16

        support = cpu_bf16.detect()
        report["cpu_bf16"] = {**support.as_json(), "cpu_default_dtype": cpu_bf16.cpu_default_dtype(support.native)}
        for dev in env["devices"]:
            try:
                choice = memory.choose_mode("auto", dev["free_bytes"])
                dev = {**dev, "auto_memory_mode": choice.mode, "auto_memory_reason": choice.reason}
            except Exception as exc:
                dev = {**dev, "auto_memory_mode": None, "auto_memory_reason": str(exc)}
            report["devices"].append(dev)
    path, looked = find_model(model)
    report["model"] = {"path": str(path), "bytes": path.stat().st_size} if path is not None else None
    report["looked"] = looked
    report["ready"] = path is not None and (report["torch"] is not None or engine_env is not None)
    return report


def _print_diagnosis(report: dict) -> None:
    print(f"ToonCrafter Studio {report['version'] or '(source checkout)'}")
    print(f"Python {report['python']} on {report['platform']}")
    print(f"Command log (tracebacks of exit 1): {report['command_log']}")
    print("Packages:")
    for name, installed in report["packages"].items():
        print(f"  {name:24s} {installed or 'not installed'}")
    env = report["torch"]
    if env is None and report["engine_env"] is not None:
        print(f"PyTorch: in the engine environment, {report['engine_env']} (ToonCrafter runs there as a "
              "worker process; `tooncrafter-studio engine status`)")
    elif env is None:
        print("PyTorch: not installed — the ToonCrafter engine is unavailable (run `tooncrafter-studio engine "
              "install`, or install the 'tooncrafter' extra); the flow engine works without it.")
    else:
        print(f"PyTorch {env['torch']}, CUDA build {env['cuda_build'] or 'none (CPU build)'}, "
              f"attention: {', '.join(env['attention_backends'])}")
        cpu = report.get("cpu_bf16")
        if cpu is not None:
            print(f"CPU: bf16 {'native' if cpu['native'] else 'not native'} ({cpu['reason']}); ToonCrafter on the "
                  f"CPU runs in {cpu['cpu_default_dtype']} by default (--dtype fp32 opts out)")
        if not report["devices"]:
            print("GPU: none usable by PyTorch — ToonCrafter runs only with --device cpu (about an hour per clip "
                  "in bf16, hours in float32; see the README).")
    for dev in report["devices"]:
        print(f"GPU {dev['index']}: {dev['name']} (compute {dev['capability']}), {_gib(dev['free_bytes'])} free "
              f"of {_gib(dev['total_bytes'])}, bf16 {'yes' if dev['bf16'] else 'no'}")
        if dev["auto_memory_mode"] is not None:
            print(f"  memory mode 'auto' would use: {dev['auto_memory_mode']} ({dev['auto_memory_reason']})")
        else:
            print(f"  {dev['auto_memory_reason']}")
    model = report["model"]
    if model is not None:
        print(f"Model: {model['path']} ({model['bytes'] / 1e9:.2f} GB)")
    else:
        print("Model: not found (nothing is downloaded). Looked in:")
        for line in report["looked"]:
            print(f"  {line}")
    print("Ready for ToonCrafter." if report["ready"] else "ToonCrafter is not ready here; the flow engine is.")
