"""`tooncrafter-studio models check|convert`: inspect and convert ToonCrafter weight files.

    models check PATH [--hash] [--json]      what the file is, its components and sizes, and whether
                                             every key and shape fits the model (exit 2 if not)
    models convert PATH --out FILE.safetensors [--dtype fp16|bf16|fp32] [--keep-unused]
                                             streaming, bounded memory, progress bar, atomic write
    models download [--repo R] [--file F]    from the hub, asked for (cli/download_cmd.py)

Weight files are never unpickled beyond plain tensors (torch weights_only) or are safetensors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.errors import InputError
from ..core.paths import find_model
from .progress import TqdmProgress

CONFIG_CHOICES = ("512", "reduced")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="check or convert ToonCrafter weight files",
                              description="Check or convert ToonCrafter weight files (model.ckpt, .safetensors).")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="identify a weight file and verify its keys and shapes",
                           description="Identify a weight file (format, components, sizes, dtype, a content "
                                       "fingerprint) and verify every key and shape against the model.")
    check.add_argument("path", metavar="PATH", help="model file, or a folder holding one")
    check.add_argument("--hash", action="store_true", help="also compute the SHA-256 of the whole file (slow)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--config", choices=CONFIG_CHOICES, default="512", help=argparse.SUPPRESS)
    check.set_defaults(handler=run_check)

    convert = sub.add_parser("convert", help="convert a checkpoint to .safetensors (smaller, never unpickled)",
                             description="Convert a checkpoint to our .safetensors format, dropping the weights "
                                         "inference never uses (66.7 M parameters).")
    convert.add_argument("path", metavar="PATH", help="model.ckpt (or another weight file)")
    convert.add_argument("--out", required=True, metavar="FILE.safetensors", help="file to write")
    convert.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16",
                         help="precision of the weights (default fp16; schedule buffers stay fp32)")
    convert.add_argument("--keep-unused", action="store_true", help="keep the weights inference never uses")
    convert.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    convert.add_argument("--config", choices=CONFIG_CHOICES, default="512", help=argparse.SUPPRESS)
    convert.set_defaults(handler=run_convert)

    from .download_cmd import add_download_parser

    add_download_parser(sub)


def _resolve(path: str) -> Path:
    given = Path(path)
    if given.exists() and not (given.is_file() or given.is_dir()):  # a FIFO, a device: reading never ends
        raise InputError(f"{path} is not a regular file, so it cannot be a model file.")
    found, _looked = find_model(path)
    if found is None:
        raise InputError(f"No model file at {path}.")
    return found


def _expected(config_name: str, keys=None):
    """The keys the file must hold: the main model's, or the sketch encoder's when the file is one."""
    from ..diffusion.weights.checkpoint import ExpectedKeys, describe_architecture

    if keys is not None and "sketch encoder" in describe_architecture(keys):
        from ..diffusion.nets.sketch_encoder import SketchEncoderConfig
        from ..diffusion.weights.checkpoint import expected_sketch_keys

        return expected_sketch_keys(SketchEncoderConfig.reduced() if config_name == "reduced" else None)
    if config_name == "reduced":
        from ..diffusion.nets.config import ToonCrafterConfig

        return ExpectedKeys.for_config(ToonCrafterConfig.reduced(), name="reduced ToonCrafter (test)")
    return ExpectedKeys.for_config()


def _size(n: float) -> str:
    from ..setup.model_download import format_size

    return format_size(n, decimals=2)


def run_check(args: argparse.Namespace) -> int:
    from ..diffusion.weights.checkpoint import (
        CheckpointMismatch,
        NonFiniteWeights,
        WeightFile,
        file_sha256,
        summarize,
    )

    path = _resolve(args.path)
    weights = WeightFile(path)
    expected = _expected(args.config, weights.keys())
    info = summarize(weights)
    sha = None
    if args.hash:
        with TqdmProgress(quiet=args.quiet) as progress:
            sha = file_sha256(path, progress)
    problem: CheckpointMismatch | NonFiniteWeights | None = None
    report = None
    try:
        report = weights.check(expected)
    except (CheckpointMismatch, NonFiniteWeights) as exc:
        problem = exc
    mismatch = problem.report if isinstance(problem, CheckpointMismatch) else None

    if args.json:
        print(json.dumps({
            "path": str(info.path), "format": info.format, "layout": info.layout, "file_bytes": info.file_bytes,
            "tensors": info.tensors, "parameters": info.elements, "payload_bytes": info.payload_bytes,
            "dtypes": info.dtypes, "architecture": info.architecture, "fingerprint": info.fingerprint,
            "sha256": sha, "metadata": info.metadata,
            "components": {c.name: {"prefix": c.prefix, "tensors": c.tensors, "parameters": c.elements,
                                    "bytes": c.nbytes} for c in info.components},
            "ok": problem is None,
            "problem": str(problem) if problem else None,
            "missing": mismatch.missing if mismatch else [],
            "unexpected": mismatch.unexpected if mismatch else [],
            "wrong_shape": [k for k, _, _ in mismatch.mismatched] if mismatch else [],
            "non_finite": problem.keys if isinstance(problem, NonFiniteWeights) else [],
            "dropped_unused": report.dropped_unused if report else [],
        }))
    else:
        print(f"{info.path}")
        print(f"  format       {info.format} ({info.layout})")
        print(f"  file size    {_size(info.file_bytes)}")
        print(f"  tensors      {info.tensors:,} ({info.elements:,} parameters, {_size(info.payload_bytes)})")
        print("  dtypes       " + ", ".join(f"{k} x{v}" for k, v in sorted(info.dtypes.items())))
        print(f"  looks like   {info.architecture}")
        print(f"  fingerprint  {info.fingerprint}")
        if sha:
            print(f"  sha256       {sha}")
        for key in ("producer", "source", "dtype"):
            if key in info.metadata:
                print(f"  {key:<12} {info.metadata[key]}")
        print("  components:")
        for c in info.components:
            print(f"    {c.name:<22} {c.tensors:>6,} tensors {c.elements / 1e6:>10.1f} M params {_size(c.nbytes):>10}")
        if report is not None:
            note = f" ({len(report.dropped_unused)} keys inference never uses are absent: fine)" \
                if report.dropped_unused else ""
            print(f"  check        OK: every key and shape fits the {expected.name} model{note}")
    if problem is not None:
        raise problem
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..diffusion.weights.checkpoint import convert

    source = _resolve(args.path)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} already exists; add --overwrite to replace it.")
    if out.suffix.lower() != ".safetensors":
        raise InputError(f"--out must name a .safetensors file, not {out.name}.")
    from ..diffusion.weights.checkpoint import WeightFile

    expected = _expected(args.config, WeightFile(source).keys())
    with TqdmProgress(quiet=args.quiet) as progress:
        info = convert(source, out, dtype=args.dtype, expected=expected, drop_unused=not args.keep_unused,
                       progress=progress)
    dropped = info.metadata.get("dropped_unused_keys", "0")
    print(f"wrote {info.path} ({_size(info.file_bytes)}, {info.tensors:,} tensors, {args.dtype}; "
          f"{dropped} unused keys dropped)")
    return 0

