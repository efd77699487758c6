"""The ToonCrafter engine's options: named as in request.params and on the command line, validated
once (`parse_settings`), and the settings of one request (`for_request`)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import Any

from ...core.errors import InputError
from ..base import InterpolationRequest
from ..sketch import SketchOptions, split_sketch_params
from .fit import FIT_MODES

MEMORY_CHOICES = ("auto", "high", "balanced", "low")
DEVICES = ("cuda", "mps", "cpu")  # mps: Apple silicon (Metal)
DTYPES = ("fp16", "bf16", "fp32")
ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")  # diffusion.nets.attention.SDPA_KERNELS
MAX_STEPS = 60  # the 'uniform_trailing' spacing breaks beyond 60 (spec §0.15); the pipeline re-checks


@dataclass(frozen=True)
class Settings:
    """The engine's parameters, validated (names as in request.params and on the command line)."""

    model: Any = None  # a path, None (search), or an injected backend / model object
    prompt: str = ""
    steps: int = 50
    cfg: float = 7.5
    eta: float = 1.0
    frame_stride: int = 10
    seed: int | None = None
    fit: str = "letterbox"
    colour_match: bool = True
    memory: str = "auto"
    device: str = "cuda"
    dtype: str = "fp16"
    trim_keys: bool = True  # drop near-copies of the anchors (no pause at keys)
    compile: bool = False  # torch.compile the UNet (diffusion/run/compile.py; falls back with one log line)
    attention: str = "auto"  # SDPA kernel (auto: PyTorch's choice)

    @property
    def model_is_object(self) -> bool:
        return self.model is not None and not isinstance(self.model, str | os.PathLike)


def _number(params: dict[str, Any], name: str, kind: type, lo: float, hi: float, default: Any) -> Any:
    value = params.get(name)
    if value is None:
        return default
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise InputError(f"ToonCrafter option {name} must be a {kind.__name__}, not {value!r}.") from None
    if not (lo <= number <= hi):
        raise InputError(f"ToonCrafter option {name} must be between {lo:g} and {hi:g} (got {number:g}).")
    return number


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name)
    if value is None:
        return default
    if value not in choices:
        raise InputError(f"ToonCrafter option {name} must be one of {', '.join(choices)} (got {value!r}).")
    return str(value)


def parse_settings(params: dict[str, Any] | None, base: Settings | None = None) -> Settings:
    params = dict(params or {})
    base = base or Settings()
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"Unknown ToonCrafter option(s): {', '.join(unknown)}.")
    colour_match = params.get("colour_match", base.colour_match)
    trim = params.get("trim_keys", base.trim_keys)
    return Settings(
        model=params.get("model", base.model),
        prompt=str(params.get("prompt") if params.get("prompt") is not None else base.prompt),
        steps=_number(params, "steps", int, 1, MAX_STEPS, base.steps),
        cfg=_number(params, "cfg", float, 1.0, 30.0, base.cfg),
        eta=_number(params, "eta", float, 0.0, 1.0, base.eta),
        frame_stride=_number(params, "frame_stride", int, 1, 60, base.frame_stride),
        seed=_number(params, "seed", int, 0, 2**63 - 1, base.seed),
        fit=_choice(params, "fit", FIT_MODES, base.fit),
        colour_match=bool(colour_match),
        memory=_choice(params, "memory", MEMORY_CHOICES, base.memory),
        device=_choice(params, "device", DEVICES, base.device),
        dtype=_choice(params, "dtype", DTYPES, base.dtype),
        trim_keys=bool(trim),
        compile=bool(params.get("compile", base.compile)),
        attention=_choice(params, "attention", ATTENTION_KERNELS, base.attention),
    )


OPTION_NAMES = tuple(Settings.__dataclass_fields__)




def for_request(request: InterpolationRequest, base: Settings) -> tuple[Settings, SketchOptions | None]:
    """The settings of one request: its params over `base`, its prompt and seed (a random seed when
    none is given, recorded in the result), and its sketch options apart."""
    sketch_options, params = split_sketch_params(request.params)
    settings = parse_settings(params, base)
    if request.prompt:
        settings = replace(settings, prompt=request.prompt)
    if request.seed is not None:
        settings = replace(settings, seed=int(request.seed))
    if settings.seed is None:
        settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
    return settings, sketch_options
