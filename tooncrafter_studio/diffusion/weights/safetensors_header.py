"""The header of a .safetensors file, read and checked before any tensor is touched.

A safetensors file is an 8-byte little-endian header length, a JSON header, then one data section
that the header's `data_offsets` must cover exactly: no overlap, no hole, nothing after the last
tensor, and each tensor's byte span equal to its shape times its element size. The safetensors
library refuses files that break these rules when it reads a tensor; checking them here, once, means
`models check`, `models convert`, the engine's pre-flight and loading all give the same answer, and
a hostile header (deep nesting, huge numbers, wrong types) is a clear ModelError, not a crash.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.errors import ModelError

# Bounds checked before anything is allocated from the header's numbers.
MAX_HEADER_BYTES = 100_000_000
MAX_TENSORS = 100_000
MAX_DIMS = 8
MAX_ELEMENTS = 1 << 40

DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    entries: dict[str, TensorEntry]
    metadata: dict[str, str]
    raw: bytes  # the header bytes as stored (part of the content fingerprint)
    data_bytes: int  # length of the data section


def _json_kind(value: Any) -> str:
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", type(None): "null"}
    return kinds.get(type(value), "a value of another kind")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _magnitude(shape: list[int]) -> str:
    """The product of a shape's dimensions, written without converting a huge int to float."""
    digits = sum(len(str(d)) - 1 for d in shape) + 1  # roughly: the sum of each dimension's exponent
    elements = math.prod(shape) if digits <= 300 else None
    return f"{elements:.3g}" if elements is not None else f"about 1e{digits}"


def _entry(name: str, key: str, value: Any) -> TensorEntry:
    where = f"{name}: tensor {key[:80]!r}"
    if not isinstance(value, dict):
        raise ModelError(f"{where} is described by {_json_kind(value)}, not an object: the header is damaged.")
    missing = [field for field in ("dtype", "shape", "data_offsets") if field not in value]
    if missing:
        raise ModelError(f"{where} has no {', '.join(missing)} in the header: the file is damaged.")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise ModelError(f"{where} has an unsupported type {str(dtype)[:20]!r}.")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
        raise ModelError(f"{where} has an invalid shape (a list of at most {MAX_DIMS} whole numbers >= 0 is needed).")
    # each dimension first: a 400-digit one would overflow a float in the message (and the product)
    elements = 0 if 0 in shape else math.prod(min(d, MAX_ELEMENTS + 1) for d in shape)
    if elements > MAX_ELEMENTS:
        raise ModelError(f"{where} claims {_magnitude(shape)} elements, over the limit of {MAX_ELEMENTS:.3g}.")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise ModelError(f"{where} has invalid data offsets (two whole numbers, begin <= end, are needed).")
    begin, end = offsets
    if end - begin != elements * DTYPE_SIZES[dtype]:
        raise ModelError(
            f"{where} spans {end - begin:,} bytes, but its shape {shape} of {dtype} needs "
            f"{elements * DTYPE_SIZES[dtype]:,}: the header is damaged."
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def _metadata(name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ModelError(f"{name}: the header's __metadata__ must map text to text; the file is damaged.")
    return dict(value)


def _check_coverage(name: str, entries: dict[str, TensorEntry], data_bytes: int, file_bytes: int,
                    header_bytes: int) -> None:
    """The tensors tile the data section exactly, in offset order."""
    position = 0
    for key, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin < position:
            raise ModelError(f"{name}: tensor {key[:80]!r} overlaps the one before it in the file: the header is damaged.")
        if entry.begin > position:
            raise ModelError(f"{name}: {entry.begin - position:,} bytes before tensor {key[:80]!r} belong to no "
                             "tensor: the header is damaged.")
        position = entry.end
    if position > data_bytes:
        raise ModelError(f"{name} is truncated: it should hold {8 + header_bytes + position:,} bytes but has "
                         f"{file_bytes:,}. Convert or download it again.")
    if position < data_bytes:
        raise ModelError(f"{name} has {data_bytes - position:,} bytes after its last tensor that belong to no "
                         "tensor: damaged or of another kind.")


def read_header(path: Path) -> SafetensorsHeader:
    """The checked header of `path`; ModelError naming the file and the fault otherwise."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelError(f"{path.name} is too short to be a safetensors file ({size} bytes): truncated or empty.")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, MAX_HEADER_BYTES):
            raise ModelError(f"{path.name} is not a valid safetensors file (header of {length:,} bytes): damaged "
                             "or of another kind.")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, 5,000-digit numbers, deep nesting
        raise ModelError(f"{path.name} is not a valid safetensors file (unreadable header: "
                         f"{type(exc).__name__}).") from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a valid safetensors file (its header is {_json_kind(header)}, "
                         "not an object).")
    metadata = _metadata(path.name, header.pop("__metadata__", None))
    if len(header) > MAX_TENSORS:
        raise ModelError(f"{path.name} lists {len(header):,} tensors, over the limit of {MAX_TENSORS:,}.")
    entries = {key: _entry(path.name, key, value) for key, value in header.items()}
    data_bytes = size - 8 - length
    _check_coverage(path.name, entries, data_bytes, size, length)
    return SafetensorsHeader(entries, metadata, raw, data_bytes)
