"""Does this CPU run bfloat16 matrix products and convolutions natively (AVX-512 BF16 or AMX)?

Where it does, ToonCrafter on the CPU runs in bf16 by default: oneDNN's bf16 convolutions and
matrix products then run 2x (AVX-512 BF16) to 6x (AMX) faster than float32, and the whole UNet
forward about twice as fast (benchmarks/bench_unet.py). Elsewhere bf16 is emulated and slower than
float32, so float32 stays the default there.

The answer is built from up to four witnesses, cheapest first:
1. the operating system's CPU flags (Linux: /proc/cpuinfo `avx512_bf16`, `amx_bf16`; other systems
   have no such file and go on to torch);
2. PyTorch's own CPU detection (the cpuinfo library it links: works on Windows and macOS too), its
   ATen kernel level (`torch.backends.cpu.get_cpu_capability()`: AVX512 or better, else the
   element-wise bf16 kernels are slow) and oneDNN's bf16 support;
3. a short numeric probe: a bf16 convolution and matrix product against float32 of the same
   rounded inputs (a broken kernel or an emulation bug shows up as a large error, not a slow run).

Importing this module imports no torch (the engine's time estimate asks before torch is loaded:
`flags_support()`); `detect()` imports it and is cached per process. Tests inject the answer
instead of depending on the machine they run on (`set_override`, or the environment variable
TOONCRAFTER_STUDIO_CPU_BF16=0/1, which child processes inherit).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
ENV_OVERRIDE = "TOONCRAFTER_STUDIO_CPU_BF16"  # "1" / "0": the verdict, without detection
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the x86 flags of native bf16 dot products
# ATen's vectorised kernel levels (get_cpu_capability) at which bf16 element-wise ops are fast.
FAST_CAPABILITIES = ("AVX512", "AVX512_BF16", "AMX", "AMX_BF16")
PROBE_TOLERANCE = 2e-2  # the probe's products have ~100-term sums: bf16 rounding gives ~4e-3


@dataclass(frozen=True)
class CpuBf16:
    """What was found. `native`: bf16 runs natively (use it by default)."""

    native: bool
    avx512_bf16: bool | None = None  # None: not known from this witness
    amx_bf16: bool | None = None
    capability: str | None = None  # torch.backends.cpu.get_cpu_capability()
    source: str = ""  # which witnesses answered ("cpuinfo", "torch", "probe", "override")
    reason: str = ""  # one line for doctor and logs

    def as_json(self) -> dict[str, Any]:
        return {"native": self.native, "avx512_bf16": self.avx512_bf16, "amx_bf16": self.amx_bf16,
                "capability": self.capability, "source": self.source, "reason": self.reason}

    @property
    def kind(self) -> str:
        """The instruction set named in messages: AMX, AVX-512 BF16 or none."""
        if self.amx_bf16:
            return "AMX"
        if self.avx512_bf16:
            return "AVX-512 BF16"
        return "none"


# --------------------------------------------------------------------------------------------------
# 1. The operating system's flags (no torch)


def parse_cpuinfo_flags(text: str) -> set[str] | None:
    """The flags of the first processor in /proc/cpuinfo text (x86 'flags', ARM 'Features');
    None when the text has no such line."""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("flags", "features"):
            return set(value.split())
    return None


def read_os_flags(path: Path = CPUINFO) -> set[str] | None:
    """The CPU flags the OS reports, or None where it reports none this way (Windows, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the first processor's block is enough: every core of a machine has the same flags
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    return parse_cpuinfo_flags(head)


def support_from_flags(flags: set[str]) -> CpuBf16:
    avx, amx = "avx512_bf16" in flags, "amx_bf16" in flags and "amx_tile" in flags
    if amx or avx:
        names = " and ".join(n for n, on in (("AVX-512 BF16", avx), ("AMX", amx)) if on)
        return CpuBf16(True, avx, amx, source="cpuinfo", reason=f"the CPU has {names}")
    return CpuBf16(False, False, False, source="cpuinfo",
                   reason="the CPU has neither AVX-512 BF16 nor AMX: bf16 would be emulated (slower than float32)")


def flags_support(path: Path = CPUINFO) -> CpuBf16 | None:
    """The answer from the OS flags alone (no torch), None where the OS gives none; an override wins."""
    forced = _forced()
    if forced is not None:
        return forced
    flags = read_os_flags(path)
    return None if flags is None else support_from_flags(flags)


# --------------------------------------------------------------------------------------------------
# 2 and 3. PyTorch's view and the numeric probe (torch imported here)


def torch_view() -> tuple[bool | None, bool | None, str | None, bool | None]:
    """(avx512_bf16, amx_bf16, ATen capability, oneDNN bf16) as this PyTorch sees them; None where
    this build does not say (the private helpers are absent from some versions)."""
    import torch

    def ask(fn: Any) -> bool | None:
        try:
            return bool(fn()) if callable(fn) else None
        except Exception:  # a helper that fails answers nothing
            return None

    cpu = getattr(torch, "cpu", None)
    avx = ask(getattr(cpu, "_is_avx512_bf16_supported", None))
    amx = ask(getattr(cpu, "_is_amx_tile_supported", None))
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:
        capability = None
    onednn = ask(getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None))
    return avx, amx, capability, onednn


def _relative_error(value: Any, reference: Any) -> float:
    """max |value − reference| / max |reference| (the checks' measure; the runtime does not import them)."""
    diff = (value.float() - reference.float()).abs()
    scale = float(reference.float().abs().max()) or 1.0
    return float(diff.max()) / scale if bool(diff.isfinite().all()) else float("inf")


def numeric_probe() -> float:
    """max relative error of a bf16 3x3 convolution and a matrix product against float32 of the same
    bf16-rounded inputs (a few ms)."""
    import torch
    import torch.nn.functional as F

    relative_error = _relative_error
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, 32, 16, 16), generator=gen).bfloat16().contiguous(memory_format=torch.channels_last)
    w = (torch.randn((32, 32, 3, 3), generator=gen) / 17).bfloat16()
    a = torch.randn((64, 96), generator=gen).bfloat16()
    b = (torch.randn((96, 48), generator=gen) / 10).bfloat16()
    with torch.inference_mode():
        conv_err = relative_error(F.conv2d(x, w, padding=1), F.conv2d(x.float(), w.float(), padding=1))
        mm_err = relative_error(a @ b, a.float() @ b.float())
    return max(conv_err, mm_err)


def combine(os_flags: set[str] | None, view: tuple[bool | None, bool | None, str | None, bool | None],
            probe_error: float | None) -> CpuBf16:
    """The verdict from the witnesses (pure, so every combination is testable)."""
    t_avx, t_amx, capability, onednn = view
    sources = []
    if os_flags is not None:
        sources.append("cpuinfo")
        avx, amx = "avx512_bf16" in os_flags, "amx_bf16" in os_flags and "amx_tile" in os_flags
    else:
        avx, amx = bool(t_avx), bool(t_amx)
    if t_avx is not None or t_amx is not None or capability is not None:
        sources.append("torch")
    if probe_error is not None:
        sources.append("probe")
    source = "+".join(sources) or "none"

    def no(reason: str) -> CpuBf16:
        return CpuBf16(False, avx, amx, capability, source, reason)

    if not (avx or amx):
        return no("the CPU has neither AVX-512 BF16 nor AMX: bf16 would be emulated (slower than float32)")
    if os_flags is not None and t_avx is False and t_amx is False:
        return no("the CPU reports bf16 instructions but this PyTorch does not see them (update PyTorch)")
    if capability is not None and capability.upper() not in FAST_CAPABILITIES:
        return no(f"PyTorch runs its CPU kernels at the {capability} level (ATEN_CPU_CAPABILITY?), below AVX512")
    if onednn is False:
        return no("this PyTorch's oneDNN has no bf16 support")
    if probe_error is not None and not probe_error <= PROBE_TOLERANCE:
        return no(f"the bf16 probe computed wrong numbers (error {probe_error:.1e}); staying in float32")
    names = " and ".join(n for n, on in (("AVX-512 BF16", avx), ("AMX", amx)) if on)
    return CpuBf16(True, avx, amx, capability, source, f"the CPU has {names}")


_override: CpuBf16 | None = None


def set_override(value: CpuBf16 | bool | None) -> None:
    """Force the answer (tests; True/False for a bare verdict); None restores detection."""
    global _override
    if isinstance(value, bool):
        value = _bare(value, "set by a test")
    _override = value


def _bare(native: bool, why: str) -> CpuBf16:
    return CpuBf16(native, source="override", reason=why)


def _forced() -> CpuBf16 | None:
    if _override is not None:
        return _override
    value = os.environ.get(ENV_OVERRIDE, "").strip()
    if value in ("0", "1"):
        return _bare(value == "1", f"{ENV_OVERRIDE}={value}")
    return None


@functools.lru_cache(maxsize=1)
def _detect_cached(probe: bool) -> CpuBf16:
    flags = read_os_flags()
    view = torch_view()
    error = None
    if probe and (flags is None or any(f in flags for f in BF16_FLAGS) or view[0] or view[1]):
        try:
            error = numeric_probe()
        except Exception as exc:  # a kernel that cannot run at all: no bf16 here
            log.info("bf16 probe failed: %s", exc)
            error = float("inf")
    result = combine(flags, view, error)
    log.info("CPU bf16: %s (%s; from %s)", "native" if result.native else "not native", result.reason,
             result.source)
    return result


def detect(probe: bool = True) -> CpuBf16:
    """The full answer (imports torch; the probe takes a few ms once per process)."""
    forced = _forced()
    if forced is not None:
        return forced
    return _detect_cached(probe)


def cpu_default_dtype(native: bool | None = None) -> str:
    """The CPU's default precision: "bf16" where it runs natively, else "fp32" (`native` injects it)."""
    if native is None:
        native = detect().native
    return "bf16" if native else "fp32"
