"""Reading, checking and converting ToonCrafter weight files, safely (spec §14).

- `.ckpt` (the official `model.ckpt`): `torch.load(weights_only=True, mmap=True)` only. Nothing in
  the file can run code: a pickle that names a callable outside PyTorch's allow-list is refused
  (and named). Lightning bookkeeping classes next to the weights (hyper-parameters, callbacks) are
  replaced by inert stand-ins, never imported. The state dict may sit under `state_dict`
  (Lightning), under `module` with 16-character key prefixes (DeepSpeed), or at the top level.
- `.safetensors` (our converted format): read lazily with safetensors, no unpickling at all.

Every load is strict: missing, unexpected and wrongly shaped keys are reported by name in a
`CheckpointMismatch` (a ModelError), with a guess at what the file is (Stable Diffusion,
DynamiCrafter, a pruned variant without the CLIP encoders, ...). Keys that inference never reads
(66.7 M parameters, 9 schedule buffers) may be absent: `convert` drops them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import struct
import warnings
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ...core.errors import ModelError
from ...core.fsio import atomic_open
from ...core.progress import CancelToken, ProgressCallback, StageReporter
from .safetensors_header import read_header

if TYPE_CHECKING:
    from ..nets.sketch_encoder import SketchEncoder, SketchEncoderConfig

log = logging.getLogger(__name__)

CKPT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)

# Checkpoint prefix -> component name shown to the user (order of the checkpoint).
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("model.diffusion_model.", "UNet"),
    ("first_stage_model.", "VAE"),
    ("cond_stage_model.", "text encoder (CLIP)"),
    ("embedder.", "image encoder (CLIP)"),
    ("image_proj_model.", "Resampler"),
)
SCHEDULE_COMPONENT = "schedule buffers"

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_DTYPE_CODES = {v: k for k, v in _SAFETENSORS_DTYPES.items()}
DTYPE_NAMES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Module roots of classes that training frameworks pickle next to the weights (hyper-parameters,
# callback states). They are replaced by inert stand-ins; nothing of them is imported or run.
_BOOKKEEPING_ROOTS = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "argparse", "typing",
                      "numpy", "_codecs", "pathlib")
# Callables a pickle can use to run code. A file naming one is refused outright.
_DANGEROUS_ROOTS = ("os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "socket",
                    "importlib", "runpy", "code", "pty", "webbrowser", "ctypes", "marshal", "types", "pickle",
                    "functools", "operator", "torch._C", "eval", "exec")


# --------------------------------------------------------------------------------------------------
# What a file should contain


@dataclass(frozen=True)
class ExpectedKeys:
    """The keys and shapes a checkpoint must hold, and which of them inference never reads."""

    shapes: Mapping[str, tuple[int, ...]]
    unused: frozenset[str] = frozenset()
    name: str = "ToonCrafter 512"

    @classmethod
    def from_model(cls, model: nn.Module, name: str = "ToonCrafter 512") -> ExpectedKeys:
        """From a built model (any device, `meta` included) and its `unused_keys()`."""
        shapes = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
        unused = frozenset(getattr(model, "unused_keys", list)())
        return cls(shapes, unused, name)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike) -> ExpectedKeys:
        """From `tooncrafter_512_keys.json` (entries with key, shape, used_at_inference)."""
        entries = json.loads(Path(path).read_text())["entries"]
        shapes = {e["key"]: tuple(e["shape"]) for e in entries}
        unused = frozenset(e["key"] for e in entries if not e.get("used_at_inference", True))
        return cls(shapes, unused)

    @classmethod
    def for_config(cls, config: Any = None, name: str | None = None) -> ExpectedKeys:
        """For a ToonCrafterConfig (default: the 512 model), built on `meta` (no weights allocated)."""
        from ..nets.model import build_model

        model = build_model(config, device="meta")
        return cls.from_model(model, name or ("ToonCrafter 512" if config is None else "configured ToonCrafter"))

    @property
    def used(self) -> dict[str, tuple[int, ...]]:
        return {k: s for k, s in self.shapes.items() if k not in self.unused}


@dataclass
class KeyReport:
    """The outcome of comparing a file's keys with the expected ones."""

    missing: list[str] = field(default_factory=list)  # needed by inference, absent
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, file, model
    dropped_unused: list[str] = field(default_factory=list)  # absent but never read: fine

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


class CheckpointMismatch(ModelError):
    """A checkpoint whose keys or shapes are not the model's; carries the report."""

    def __init__(self, message: str, report: KeyReport, architecture: str) -> None:
        super().__init__(message)
        self.report = report
        self.architecture = architecture


def compare_keys(file_shapes: Mapping[str, tuple[int, ...]], expected: ExpectedKeys) -> KeyReport:
    report = KeyReport()
    for key, shape in expected.shapes.items():
        if key not in file_shapes:
            (report.dropped_unused if key in expected.unused else report.missing).append(key)
        elif tuple(file_shapes[key]) != tuple(shape):
            report.mismatched.append((key, tuple(file_shapes[key]), tuple(shape)))
    report.unexpected = [k for k in file_shapes if k not in expected.shapes]
    return report


def describe_architecture(keys: Iterable[str]) -> str:
    """A short guess at what a state dict is, for error messages."""
    keys = list(keys)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    contains = lambda part: any(part in k for k in keys)  # noqa: E731
    if not keys:
        return "an empty checkpoint"
    if has("conditioner.embedders."):
        return "a Stable Video Diffusion / SDXL checkpoint"
    if has("input_hint_block.") and has("zero_convs."):
        return "a ToonCrafter sketch encoder (sketch_encoder.ckpt)"
    if not has("model.diffusion_model."):
        if has("diffusion_model.") or has("input_blocks."):
            return "a bare UNet without the model.diffusion_model. prefix (not a full ToonCrafter checkpoint)"
        return "not a latent-diffusion checkpoint (no model.diffusion_model.* weights)"
    if not (contains("temopral_conv") or contains("temporal")):
        return "a Stable Diffusion (image) checkpoint, not a video model"
    if not has("first_stage_model.decoder.attn_refinement"):
        return "a DynamiCrafter (or other video-diffusion) checkpoint: its decoder lacks ToonCrafter's dual-reference layers"
    if not has("cond_stage_model."):
        return "a pruned ToonCrafter variant without the CLIP text encoder (cond_stage_model.*), which is required"
    if not has("embedder."):
        return "a pruned ToonCrafter variant without the CLIP image encoder (embedder.*), which is required"
    return "a ToonCrafter checkpoint"


def _examples(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def raise_for_report(report: KeyReport, file_keys: Iterable[str], path: Path, expected: ExpectedKeys) -> None:
    if report.ok:
        return
    architecture = describe_architecture(file_keys)
    if architecture == "a ToonCrafter checkpoint" and report.mismatched:
        architecture = "a ToonCrafter checkpoint of another size or version"
    parts = []
    if report.missing:
        parts.append(f"{len(report.missing)} missing ({_examples(report.missing)})")
    if report.unexpected:
        parts.append(f"{len(report.unexpected)} unexpected ({_examples(report.unexpected)})")
    if report.mismatched:
        shapes = [f"{k} is {list(a)} in the file but {list(b)} in the model" for k, a, b in report.mismatched]
        parts.append(f"{len(report.mismatched)} with the wrong shape ({_examples(shapes, 2)})")
    raise CheckpointMismatch(
        f"{path.name} does not fit the {expected.name} model (it looks like {architecture}): keys "
        + "; ".join(parts) + ".",
        report,
        architecture,
    )


# --------------------------------------------------------------------------------------------------
# Reading files


def _inert_class(qualified: str) -> type:
    """A stand-in for a bookkeeping class: whatever the pickle builds with it becomes a plain
    OrderedDict holding data only (PyTorch's safe unpickler fills dicts and their attributes and
    nothing else), so no code of the original class is imported or run."""

    def _new(cls, *args: Any, **kwargs: Any) -> OrderedDict:
        return OrderedDict()

    module, _, name = qualified.rpartition(".")
    return type(name or "Inert", (), {"__new__": _new, "__module__": module or "inert"})


def _is_bookkeeping(qualified: str) -> bool:
    root = qualified.split(".", 1)[0]
    return root in _BOOKKEEPING_ROOTS and not any(qualified == d or qualified.startswith(d + ".")
                                                   for d in _DANGEROUS_ROOTS)


def _torch_load(path: Path) -> Any:
    """torch.load with weights_only (and mmap for zip files); unsafe content refused by name."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):  # zip (torch.save) or a pickle
        raise ModelError(
            f"{path.name} is not a PyTorch checkpoint ({path.stat().st_size:,} bytes"
            + (", empty" if not magic else "") + "): it cannot be read as one. Is it the right file?"
        )
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # not a zip file, truncated, legacy format: torch.load decides below
        log.debug("could not list globals of %s: %s", path, exc)
        unsafe = []
    refused = [g for g in unsafe if not _is_bookkeeping(g)]
    if refused:
        raise ModelError(
            f"{path.name} was refused: loading it would import or run code outside PyTorch ({_examples(refused)}), "
            "which a weights file never needs. It was not executed. Get the checkpoint from its official source."
        )
    stand_ins = [(_inert_class(g), g) for g in unsafe]
    try:
        with torch.serialization.safe_globals(stand_ins), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            try:
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                # legacy (non-zip) files cannot be memory-mapped
                return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"{path.name} was refused: it is not a plain weights file and loading it would need to run code "
            f"({str(exc).splitlines()[-1][:160]}). It was not executed."
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # truncated, damaged or malformed (memo misses, stack underflow, bad zip, ...)
        size = path.stat().st_size if path.exists() else 0
        first_line = (str(exc).splitlines() or [""])[0]
        detail = (first_line if isinstance(exc, RuntimeError) and first_line
                  else f"{type(exc).__name__}: {first_line}".rstrip(": "))[:120]
        raise ModelError(
            f"{path.name} cannot be read as a PyTorch checkpoint ({size:,} bytes): the file is truncated, "
            f"damaged or of another kind ({detail}). Download it again."
        ) from exc


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a loaded object and its layout name."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state, layout = dict(obj["state_dict"]), "lightning"
    elif isinstance(obj, Mapping) and isinstance(obj.get("module"), Mapping):
        # DeepSpeed: every key carries a 16-character wrapper prefix (e.g. "_forward_module.")
        state, layout = {k[16:]: v for k, v in obj["module"].items()}, "deepspeed"
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, layout = dict(obj), "plain"
    else:
        raise ModelError(f"{path.name} holds no state dict (no 'state_dict' entry and no tensors): not a model file.")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(state):
        others = [k for k in state if k not in tensors]
        raise ModelError(f"{path.name}: state dict entries that are not tensors ({_examples(others)}).")
    return tensors, layout


def _rename_legacy(state: dict[str, torch.Tensor], expected: ExpectedKeys | None) -> dict[str, torch.Tensor]:
    """The original's fallback: `framestride_embed` was the old name of `fps_embedding`."""
    if not any("framestride_embed" in k for k in state):
        return state
    if expected is not None and any("framestride_embed" in k for k in expected.shapes):
        return state
    return {k.replace("framestride_embed", "fps_embedding"): v for k, v in state.items()}


class WeightFile:
    """An opened weight file: key -> shape / dtype without reading data; tensors on demand."""

    def __init__(self, path: str | os.PathLike, expected: ExpectedKeys | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ModelError(f"Model file {self.path} does not exist.")
        if not self.path.is_file():  # a folder, FIFO, device (a link to /dev/zero would never end)
            raise ModelError(f"{self.path} is not a regular file, so it cannot be a model file.")
        self.metadata: dict[str, str] = {}
        self._safe = None
        if self.path.suffix.lower() in SAFETENSORS_SUFFIXES:
            self.format, self.layout = "safetensors", "safetensors"
            header = read_header(self.path)
            self._header_raw = header.raw
            self.metadata = header.metadata
            self._shapes = {k: e.shape for k, e in header.entries.items()}
            self._dtypes = {k: _SAFETENSORS_DTYPES[e.dtype] for k, e in header.entries.items()}
            self._tensors: dict[str, torch.Tensor] = {}
        else:
            self.format = "ckpt"
            self._header_raw = b""
            state, self.layout = _unwrap(_torch_load(self.path), self.path)
            state = _rename_legacy(state, expected)
            self._tensors = state
            self._shapes = {k: tuple(v.shape) for k, v in state.items()}
            self._dtypes = {k: v.dtype for k, v in state.items()}

    # -- description ------------------------------------------------------------------------

    def keys(self) -> list[str]:
        return list(self._shapes)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._shapes)

    def dtype(self, key: str) -> torch.dtype:
        return self._dtypes[key]

    def nbytes(self, key: str) -> int:
        return math.prod(self._shapes[key]) * self._dtypes[key].itemsize

    # -- data -------------------------------------------------------------------------------

    def tensor(self, key: str) -> torch.Tensor:
        """The stored tensor (memory-mapped where possible: touching it reads it)."""
        if self.format == "ckpt":
            return self._tensors[key]
        if self._safe is None:
            from safetensors import safe_open

            try:
                self._safe = safe_open(str(self.path), framework="pt", device="cpu")
            except Exception as exc:
                raise ModelError(f"{self.path.name} cannot be read as safetensors: {exc}.") from exc
        try:
            return self._safe.get_tensor(key)
        except Exception as exc:
            raise ModelError(f"{self.path.name}: tensor {key} cannot be read ({exc}); the file is damaged.") from exc

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for key in self._shapes:
            yield key, self.tensor(key)

    def check(self, expected: ExpectedKeys, values: str = "sample") -> KeyReport:
        """The one validation of a weight file, shared by `models check`, `models convert`, the engine's
        pre-flight and loading. The header was checked on opening; here the keys and shapes are
        checked strictly (CheckpointMismatch names the offending keys) and, with values="sample",
        the first and last elements of every weight are read (a few MB of a 10 GB file) so that a file
        of NaN or infinite weights is refused before a run writes black frames. Convert and load also
        check every value of every tensor they stream (`require_finite`)."""
        report = compare_keys(self._shapes, expected)
        raise_for_report(report, self._shapes, self.path, expected)
        if values == "sample":
            bad = [key for key in self._shapes if _is_weight(key) and not _sample_is_finite(self.tensor(key))]
            if bad:
                raise NonFiniteWeights(self.path, bad)
        elif values != "none":
            raise ValueError(f"values must be 'sample' or 'none', not {values!r}")
        return report

    def require_finite(self, key: str, tensor: torch.Tensor, source: torch.Tensor | None = None) -> None:
        """Every value of a streamed weight is finite. `source` is the stored tensor `tensor` was cast
        from: when only the cast overflowed, the message names the precision, not a damaged file."""
        if not _is_weight(key) or not tensor.dtype.is_floating_point or bool(torch.isfinite(tensor).all()):
            return
        if source is not None and bool(torch.isfinite(source).all()):
            name = str(tensor.dtype).replace("torch.", "")
            raise ModelError(f"{self.path.name}: weight {key} is too large for {name} (it overflows to infinity); "
                             "choose bf16 or fp32.")
        raise NonFiniteWeights(self.path, [key])


class NonFiniteWeights(ModelError):
    """Weights that are NaN or infinite: a damaged file (or a failed training run), never usable."""

    def __init__(self, path: Path, keys: list[str]) -> None:
        super().__init__(f"{path.name} holds NaN or infinite weights ({len(keys)} tensor"
                         f"{'s' if len(keys) != 1 else ''}: {_examples(keys, 2)}): the file is damaged. "
                         "Download or convert it again.")
        self.keys = keys


def _is_weight(key: str) -> bool:
    return "." in key  # schedule buffers (no dot) are recomputed and compared separately


def _sample_is_finite(tensor: torch.Tensor, count: int = 1024) -> bool:
    if not tensor.dtype.is_floating_point or tensor.numel() == 0:
        return True
    flat = tensor.reshape(-1)
    sample = flat if flat.numel() <= 2 * count else torch.cat([flat[:count], flat[-count:]])
    return bool(torch.isfinite(sample).all())


# --------------------------------------------------------------------------------------------------
# Identification


@dataclass(frozen=True)
class ComponentSummary:
    name: str
    prefix: str
    tensors: int
    elements: int
    nbytes: int


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    format: str  # "ckpt" | "safetensors"
    layout: str  # "lightning" | "deepspeed" | "plain" | "safetensors"
    file_bytes: int
    tensors: int
    elements: int
    payload_bytes: int
    dtypes: dict[str, int]  # dtype name -> number of tensors
    components: tuple[ComponentSummary, ...]
    architecture: str
    fingerprint: str  # cheap content id: hash of the key/shape/dtype table (and header) + file size
    metadata: dict[str, str]


def _fingerprint(weights: WeightFile, samples: int = 32, block: int = 1 << 16) -> str:
    """Hash of the file size, the key/shape/dtype table (or safetensors header) and `samples` blocks
    of 64 KB spread evenly over the file: two files with the same layout but other values differ,
    and it reads about 2 MB of a 10 GB file. Not a substitute for `file_sha256`."""
    digest = hashlib.sha256()
    size = weights.path.stat().st_size
    digest.update(str(size).encode())
    with open(weights.path, "rb") as handle:
        for i in range(samples):
            handle.seek(max(0, (size - block) * i // max(1, samples - 1)))
            digest.update(handle.read(block))
    if weights.format == "safetensors":
        digest.update(weights._header_raw)
    else:
        try:  # the pickle of a zip checkpoint lists every storage and its layout: small and telling
            with zipfile.ZipFile(weights.path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                digest.update(archive.read(name))
        except (zipfile.BadZipFile, StopIteration, OSError):
            pass
        for key in weights.keys():
            digest.update(f"{key}:{weights._shapes[key]}:{weights._dtypes[key]};".encode())
    return digest.hexdigest()[:16]


def summarize(weights: WeightFile) -> CheckpointInfo:
    groups: dict[str, list[str]] = {prefix: [] for prefix, _ in COMPONENTS}
    groups[""] = []
    other: list[str] = []
    for key in weights.keys():
        prefix = next((p for p, _ in COMPONENTS if key.startswith(p)), None)
        if prefix is not None:
            groups[prefix].append(key)
        elif "." not in key:
            groups[""].append(key)
        else:
            other.append(key)
    names = dict(COMPONENTS) | {"": SCHEDULE_COMPONENT, "?": "other"}
    if other:
        groups["?"] = other
    components = tuple(
        ComponentSummary(names[prefix], prefix, len(keys), sum(math.prod(weights._shapes[k]) for k in keys),
                         sum(weights.nbytes(k) for k in keys))
        for prefix, keys in groups.items() if keys
    )
    dtypes = Counter(str(weights.dtype(k)).replace("torch.", "") for k in weights.keys())
    return CheckpointInfo(
        path=weights.path,
        format=weights.format,
        layout=weights.layout,
        file_bytes=weights.path.stat().st_size,
        tensors=len(weights.keys()),
        elements=sum(c.elements for c in components),
        payload_bytes=sum(c.nbytes for c in components),
        dtypes=dict(dtypes),
        components=components,
        architecture=describe_architecture(weights.keys()),
        fingerprint=_fingerprint(weights),
        metadata=dict(weights.metadata),
    )


def identify(path: str | os.PathLike) -> CheckpointInfo:
    """Describe a weight file without reading its tensors (seconds even for 10 GB)."""
    return summarize(WeightFile(path))


def file_sha256(path: str | os.PathLike, progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None, chunk: int = 16 << 20) -> str:
    """SHA-256 of the whole file (reads every byte: minutes for 10 GB)."""
    path = Path(path)
    size = path.stat().st_size
    reporter = StageReporter(progress, cancel, "hash", max(1, math.ceil(size / chunk)))
    reporter.start(path.name)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            reporter.step()
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Loading into a model


def load_state_dict(path: str | os.PathLike, expected: ExpectedKeys) -> dict[str, torch.Tensor]:
    """The checked state dict of a file (tensors memory-mapped, stored dtype)."""
    weights = WeightFile(path, expected)
    weights.check(expected)
    return dict(weights.items())


@torch.no_grad()
def load_into_model(
    model: nn.Module,
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    name: str | None = None,
) -> KeyReport:
    """Load a weight file strictly into `model` (typically built on `meta`): each tensor is cast to
    the parameter dtype (`dtype`, default the model's) and placed on `device`, one at a time.
    Floating-point schedule buffers stay float32. Keys a converted file dropped (never read by
    inference) get zeros, schedule buffers their computed values. `name` names the model in errors."""
    expected = ExpectedKeys.from_model(model) if name is None else ExpectedKeys.from_model(model, name)
    weights = WeightFile(path, expected)
    report = weights.check(expected)
    current = model.state_dict(keep_vars=True)
    device = torch.device(device)
    reporter = StageReporter(progress, cancel, "load", len(current))
    reporter.start(weights.path.name)
    state: dict[str, torch.Tensor] = {}
    for key, target in current.items():
        is_buffer = "." not in key
        want = torch.float32 if is_buffer else (dtype or target.dtype)
        if key in weights._shapes:
            stored = weights.tensor(key)
            state[key] = stored.to(device=device, dtype=want)
            weights.require_finite(key, state[key], source=stored)
        else:  # dropped by conversion: inference never reads it
            state[key] = torch.zeros(target.shape, dtype=want, device=device)
        reporter.step()
    model.load_state_dict(state, strict=True, assign=True)
    if report.dropped_unused and hasattr(model, "reset_schedule_buffers"):
        _restore_dropped_buffers(model, report.dropped_unused)
    _materialize_leftovers(model, device)
    _compare_schedule(model, weights)
    return report


def _materialize_leftovers(model: nn.Module, device: torch.device) -> None:
    """Non-persistent buffers are not in any file (e.g. open_clip's attn_mask, which our forward never
    reads); give those still on `meta` real zeros so the model can be moved between devices."""
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.device.type == "meta":
                module._buffers[name] = torch.zeros(buffer.shape, dtype=buffer.dtype, device=device)


def _restore_dropped_buffers(model: nn.Module, dropped: list[str]) -> None:
    from ..nets.schedule import schedule_buffers

    config = getattr(getattr(model, "config", None), "schedule", None)
    computed = schedule_buffers(config)
    for key in dropped:
        if key in computed:
            buffer = getattr(model, key)
            buffer.copy_(computed[key].to(buffer.device))


def _compare_schedule(model: nn.Module, weights: WeightFile) -> None:
    """The file's schedule buffers win; say so if they differ from the computed ones."""
    from ..nets.schedule import SAMPLER_BUFFERS, schedule_buffers

    config = getattr(getattr(model, "config", None), "schedule", None)
    computed = schedule_buffers(config)
    for key in SAMPLER_BUFFERS:
        if key in weights._shapes:
            stored = weights.tensor(key).float()
            if stored.shape == computed[key].shape and not torch.allclose(stored, computed[key], atol=1e-6, rtol=0):
                log.warning("%s: schedule buffer %s differs from the computed schedule; using the file's values",
                            weights.path.name, key)


def load_model(
    path: str | os.PathLike,
    config: Any = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> nn.Module:
    """Build the model on `meta` and load `path` into it strictly (no throw-away allocation)."""
    from ..nets.model import build_model

    model = build_model(config, device="meta", dtype=dtype)
    load_into_model(model, path, device=device, dtype=dtype, progress=progress, cancel=cancel)
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Converting


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str = "fp16",
    expected: ExpectedKeys | None = None,
    drop_unused: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> CheckpointInfo:
    """Write `source` as a .safetensors file, tensor by tensor (memory bounded by the largest
    tensor), atomically (a cancelled or failed run leaves no file). Parameters are cast to `dtype`
    (fp16 | bf16 | fp32); schedule buffers stay float32. With `drop_unused`, keys inference never
    reads are left out. The source is checked strictly against `expected` (default: the 512 model)."""
    if dtype not in DTYPE_NAMES:
        raise ModelError(f"Unknown dtype {dtype!r}; choose fp16, bf16 or fp32.")
    target = DTYPE_NAMES[dtype]
    out = Path(out)
    if out.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ModelError(f"The converted file must end in .safetensors, not {out.name}.")
    if expected is None:
        expected = ExpectedKeys.for_config()
    weights = WeightFile(source, expected)
    if out.resolve() == weights.path.resolve():
        raise ModelError(f"Converting {weights.path.name} onto itself is not possible; choose another --out.")
    weights.check(expected)
    keys = [k for k in expected.shapes if k in weights._shapes and not (drop_unused and k in expected.unused)]

    def stored_dtype(key: str) -> torch.dtype:
        source_dtype = weights.dtype(key)
        if "." not in key or not source_dtype.is_floating_point:
            return torch.float32 if source_dtype.is_floating_point else source_dtype
        return target

    header: dict[str, Any] = {}
    offset = 0
    for key in keys:
        d = stored_dtype(key)
        n = math.prod(weights._shapes[key]) * d.itemsize
        header[key] = {"dtype": _DTYPE_CODES[d], "shape": list(weights._shapes[key]), "data_offsets": [offset, offset + n]}
        offset += n
    dropped = [k for k in weights._shapes if k not in header]
    header["__metadata__"] = {
        "format": "pt",
        "producer": "tooncrafter-studio models convert",
        "model": expected.name,
        "source": weights.path.name,
        "source_fingerprint": _fingerprint(weights),
        "dtype": dtype,
        "dropped_unused_keys": str(len(dropped)),
    }
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # 8-byte alignment of the data section

    reporter = StageReporter(progress, cancel, "convert", len(keys))
    reporter.start(f"{weights.path.name} -> {out.name}")
    with atomic_open(out, "wb", error=ModelError) as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        for key in keys:
            stored = weights.tensor(key)
            tensor = stored.to(stored_dtype(key))
            weights.require_finite(key, tensor, source=stored)
            del stored
            handle.write(_tensor_bytes(tensor))
            del tensor
            reporter.step(message=key.rsplit(".", 2)[0][-40:])
    log.info("converted %s -> %s (%d tensors, %d dropped)", weights.path, out, len(keys), len(dropped))
    return identify(out)


def expected_sketch_keys(config: SketchEncoderConfig | None = None) -> ExpectedKeys:
    """The ExpectedKeys of a sketch-encoder file (340 keys for the published encoder)."""
    from ..nets.sketch_encoder import SKETCH_ENCODER_NAME, build_sketch_encoder

    return ExpectedKeys.from_model(build_sketch_encoder(config), SKETCH_ENCODER_NAME)


def load_sketch_encoder(path: str | os.PathLike, config: SketchEncoderConfig | None = None,
                        device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                        progress: Any = None, cancel: Any = None) -> SketchEncoder:
    """`sketch_encoder.ckpt` (plain or {"state_dict": ...}) or a .safetensors copy, loaded strictly
    through the checkpoint module's safe reader (weights_only; wrong files named)."""
    from ..nets.sketch_encoder import SKETCH_ENCODER_NAME, build_sketch_encoder

    encoder = build_sketch_encoder(config, dtype=dtype)
    load_into_model(encoder, path, device=device, dtype=dtype, progress=progress, cancel=cancel,
                    name=SKETCH_ENCODER_NAME)
    return encoder.eval()
