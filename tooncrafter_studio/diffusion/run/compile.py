"""`--compile`: torch.compile of the UNet, with a fallback to the uncompiled UNet and one log line
wherever it cannot compile (no C++ compiler for the CPU backend, no Triton for CUDA, a graph the
compiler rejects).

The module is compiled in place (`nn.Module.compile` semantics), so its state-dict keys and the
memory modes' placement stay as they are. Only the high memory mode (and the CPU) compiles: the
balanced and low modes move weights between devices around the UNet's blocks, which would make
the compiled graph recompile or break at every move.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def compile_blocker(device: torch.device | str, mode: str = "high") -> str | None:
    """Why the UNet cannot be compiled here, or None when it can be tried."""
    dev = torch.device(device)
    if mode != "high" and dev.type != "cpu":
        return f"the {mode} memory mode moves weights during the step"
    if not hasattr(torch, "compile"):
        return "this PyTorch has no torch.compile"
    if sys.platform == "win32":
        return "torch.compile's inductor backend is not supported on Windows here"
    if dev.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if dev.type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        return "no C++ compiler found"
    return None


def compile_unet(unet: nn.Module, device: torch.device | str = "cpu", mode: str = "high", **options: Any) -> bool:
    """Compile `unet` in place; True when compiled (errors at the first call still fall back)."""
    blocker = compile_blocker(device, mode)
    if blocker is not None:
        log.warning("--compile: running the UNet uncompiled (%s).", blocker)
        return False
    compiled = torch.compile(unet._call_impl, **options)
    eager = unet._call_impl

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # the compiler's failure, reported once; the eager call decides
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            log.warning("--compile: torch.compile failed (%s); running the UNet uncompiled.", first)
            unet._compiled_call_impl = None
            return eager(*args, **kwargs)

    unet._compiled_call_impl = guarded  # what nn.Module.__call__ runs when set (Module.compile)
    return True


def uncompile(unet: nn.Module) -> None:
    unet._compiled_call_impl = None
