"""`tooncrafter-studio interpolate START END --count N --out DIR`: in-betweens of two loose images.

Reads the two keys, asks an engine for the in-betweens at the times the count and spacing give
(or the explicit --times), and writes them as a numbered PNG sequence at START's resolution,
keeping alpha and 16-bit depth. Every frame is made before the first file is written, each file
is written atomically, and a failure part-way removes what this run wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import EngineUnavailable, ExportError, InputError, MediaError, StudioError
from ..core.fsio import os_error
from ..core.limits import MAX_START_NUMBER
from ..core.progress import CancelToken
from ..engines.base import InterpolationRequest
from ..engines.sketch import split_sketch_params
from ..engines.tooncrafter.presets import PRESETS, describe_plan
from ..export.naming import Naming, check_name_length
from ..export.overwrite import enclosing_project, same_file
from ..media import read_image, write_png
from ..media.imageio import to_bit_depth, to_channels
from ..pipeline.engines import build_engine
from ..project.commands import check_seed
from ..project.spacing import MAX_INBETWEENS, SPACINGS, inbetween_times
from . import sketch_args
from .progress import TqdmProgress

SEPARATORS = {".": ".", "_": "_", "-": "-", "none": ""}

# Options handed to the ToonCrafter engine in request.params (name in params -> argparse dest).
TOONCRAFTER_PARAMS = ("model", "steps", "cfg", "eta", "frame_stride", "memory", "device", "dtype", "fit",
                      "colour_match", "compile", "attention")
FLOW_PARAMS = ("quality", "arc")


# --------------------------------------------------------------------------- argument checks

def _read_key(path: str) -> np.ndarray:
    file = Path(path)
    if not file.exists():
        raise MediaError(f"{path} does not exist.")
    if not file.is_file():
        raise MediaError(f"{path} is not a file.")
    return read_image(file)


def _parse_times(text: str) -> list[float]:
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise InputError(f"--times: '{part}' is not a number (give times like 0.25,0.5,0.75).") from None
    return values


def match_keys(start: np.ndarray, end: np.ndarray, resize: bool, start_path: str, end_path: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """Bring END to START's size, channels and depth (size only with --resize)."""
    if start.shape[:2] != end.shape[:2]:
        if not resize:
            raise MediaError(
                f"The keys differ in size: {start_path} is {start.shape[1]}x{start.shape[0]}, "
                f"{end_path} is {end.shape[1]}x{end.shape[0]}. Use --resize to scale the end key to the start key."
            )
        shrink = end.shape[0] * end.shape[1] > start.shape[0] * start.shape[1]
        end = cv2.resize(end, (start.shape[1], start.shape[0]),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    depth = 16 if np.uint16 in (start.dtype, end.dtype) else 8  # promote an 8-bit key to 16-bit
    alpha = 4 in (start.shape[2], end.shape[2])  # give an RGB key an opaque matte
    start = to_channels(to_bit_depth(start, depth), alpha)
    end = to_channels(to_bit_depth(end, depth), alpha)
    return start, end


def check_output_folder(out: Path) -> None:
    """The folder exists (or is created) and a file can be written in it."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"The output folder {out} is a file, not a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise os_error(ExportError, out, exc) from None


def frame_names(count: int, name: str, separator: str, padding: int, start_number: int) -> list[str]:
    naming = Naming(name, separator, padding, start_number)
    return [naming.file_name(i) for i in range(count)]


# --------------------------------------------------------------------------- the command

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "interpolate", help="make in-betweens of two images",
        description="Make in-betweens of two key images and write them as a numbered PNG sequence.")
    p.add_argument("start", metavar="START", help="the first key (PNG, TIFF, JPEG...)")
    p.add_argument("end", metavar="END", help="the second key")
    p.add_argument("--count", "-n", type=int, help="number of in-betweens (not needed with --times)")
    p.add_argument("--out", "-o", required=True, help="output folder (created if missing)")
    p.add_argument("--times", help="explicit times in (0, 1), comma separated, increasing")
    p.add_argument("--spacing", choices=SPACINGS, default="linear",
                   help="timing of the in-betweens: ease-in bunches them near START (default linear)")
    p.add_argument("--engine", default="flow", help="flow (default), crossfade or tooncrafter")
    p.add_argument("--name", default="inbetween", help="file name stem (default inbetween)")
    p.add_argument("--separator", choices=tuple(SEPARATORS), default=".",
                   help="between name and number: '.', '_', '-' or none (default '.')")
    p.add_argument("--padding", type=int, default=4, help="digits of the frame number (default 4)")
    p.add_argument("--start-number", type=int, default=1, help="number of the first file (default 1)")
    p.add_argument("--seed", type=int, help="random seed for engines that use one")
    p.add_argument("--prompt", default="", help="text prompt for engines that take one")
    p.add_argument("--resize", action="store_true", help="scale END to START's size when they differ")
    p.add_argument("--overwrite", action="store_true", help="replace files of the same names in --out")
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    g = p.add_argument_group("tooncrafter engine")
    g.add_argument("--model", help="model checkpoint (model.ckpt or .safetensors)")
    g.add_argument("--preset", choices=("draft", "final"),
                   help="speed preset: draft = 15 steps, final = 50 (the default); --steps overrides")
    g.add_argument("--steps", type=int, help="denoising steps (default 50, the final preset)")
    g.add_argument("--cfg", type=float, help="classifier-free guidance scale (default 7.5)")
    g.add_argument("--eta", type=float, help="DDIM eta (default 1.0)")
    g.add_argument("--frame-stride", type=int, help="frame stride conditioning (default 10)")
    g.add_argument("--memory", choices=("auto", "high", "balanced", "low"), help="GPU memory mode (default auto)")
    g.add_argument("--device", choices=("cuda", "mps", "cpu"), help="device (default cuda; mps: Apple silicon)")
    g.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="weight precision (default: fp16 on CUDA and MPS; on the CPU bf16 where it has "
                   "AVX-512 BF16 or AMX, else fp32)")
    g.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the UNet (faster steps after a slow first one; high memory mode)")
    g.add_argument("--attention", choices=("auto", "flash", "efficient", "cudnn", "math"),
                   help="attention (SDPA) kernel (default auto: PyTorch's choice)")
    g.add_argument("--fit", choices=("letterbox", "crop"), help="fit the keys into 512x320 (default letterbox)")
    g.add_argument("--no-colour-match", dest="colour_match", action="store_false", default=None,
                   help="keep the model's colours instead of matching them to the keys")
    sketch_args.add_arguments(p)
    f = p.add_argument_group("flow engine")
    f.add_argument("--quality", choices=("best", "fast"), help="flow quality (default best; fast is ~5x quicker)")
    f.add_argument("--arc", type=_parse_arc, default=None, metavar="X,Y",
                   help="bend the motion's path: where it passes at mid-segment, offset from the straight "
                        "line in fractions of the frame (e.g. 0,-0.2: a fifth of the height higher)")
    p.set_defaults(handler=run_interpolate)


def _parse_arc(text: str) -> list[float]:
    from ..project.document import check_arc

    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not two numbers X,Y") from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"'{text}' is not two numbers X,Y")
    try:
        check_arc(values)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return values


def confidence_lines(info: dict) -> list[str]:
    """What an engine said about its own in-betweens: confidence per frame and any warning."""
    lines = []
    confidence = info.get("confidence")
    if confidence:
        method = {"shapes": "shapes + flow", "flow": "dense flow"}.get(info.get("method", ""), info.get("method", ""))
        lines.append(f"confidence ({method}): " + " ".join(f"{c:.2f}" for c in confidence))
    if info.get("message"):
        lines.append(f"warning: {info['message']}")
    return lines


def _check_naming(args: argparse.Namespace) -> None:
    if not args.name or any(c in args.name for c in '/\\:*?"<>|\0'):
        raise InputError(f"--name '{args.name}' cannot be used in a file name.")
    check_name_length(args.name, InputError)
    if not (1 <= args.padding <= 10):
        raise InputError(f"--padding must be between 1 and 10 (got {args.padding}).")
    if not 0 <= args.start_number <= MAX_START_NUMBER:
        raise InputError(f"--start-number must be from 0 to {MAX_START_NUMBER:,} (got {args.start_number}).")


def resolve_times(args: argparse.Namespace) -> list[float]:
    if args.times is not None:
        return inbetween_times(args.count or 0, args.spacing, explicit=_parse_times(args.times))
    if args.count is None:
        raise InputError("Give the number of in-betweens with --count N (or the times with --times).")
    if args.count > MAX_INBETWEENS:
        raise InputError(f"--count {args.count} is too many; at most {MAX_INBETWEENS} in-betweens per pair of keys.")
    return inbetween_times(args.count, args.spacing)


def run_interpolate(args: argparse.Namespace) -> int:
    quiet = bool(getattr(args, "quiet", False))
    check_seed(args.seed)
    _check_naming(args)
    times = resolve_times(args)
    start = _read_key(args.start)
    end = _read_key(args.end)
    start, end = match_keys(start, end, args.resize, args.start, args.end)
    names = FLOW_PARAMS if args.engine == "flow" else TOONCRAFTER_PARAMS
    params = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if names is TOONCRAFTER_PARAMS and getattr(args, "preset", None) and "steps" not in params:
        params["steps"] = PRESETS[args.preset]
    engine = build_engine(args.engine, params)  # options are checked here, once, before probe()
    probe = engine.probe()
    if not probe.available:
        raise EngineUnavailable(f"The {args.engine} engine is not available: {probe.reason}")
    if args.prompt and not engine.capabilities.supports_prompt and not quiet:
        print(f"note: the {args.engine} engine ignores --prompt.", file=sys.stderr)
    sketches = sketch_args.collect_sketches(args, times)
    if sketches and not getattr(engine, "accepts_sketches", False):
        if not quiet:
            print(f"note: the {args.engine} engine ignores sketches (only ToonCrafter uses them).", file=sys.stderr)
        sketches = []
    if sketches:
        from ..engines.tooncrafter.sketches import placement_notes, snap_times

        if args.sketch_snap:
            times, sketches = snap_times(times, sketches)
        params["sketches"] = sketches
        for key in ("sketch_scale", "sketch_context", "sketch_encoder"):
            if getattr(args, key, None) is not None:
                params[key] = getattr(args, key)
        split_sketch_params(params)  # bad strength or context: refused before the run
        if not quiet:
            for note in placement_notes(sketches, times):
                print(f"note: {note}", file=sys.stderr)

    out = Path(args.out)
    made = [p for p in [out, *out.parents] if not os.path.lexists(p)]
    try:
        return _interpolate_into(out, args, engine, start, end, times, params, quiet)
    except BaseException:
        for folder in made:  # a failed run leaves no empty output folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _interpolate_into(out: Path, args: argparse.Namespace, engine, start: np.ndarray, end: np.ndarray,
                      times: list[float], params: dict, quiet: bool) -> int:
    check_output_folder(out)  # before the (possibly long) run, after the cheap checks
    planned = frame_names(len(times), args.name, SEPARATORS[args.separator], args.padding, args.start_number)
    taken = [name for name in planned if (out / name).exists()]
    keys = [Path(args.start), Path(args.end)]
    clobbered = [name for name in taken if any(same_file(out / name, key) for key in keys)]
    if clobbered:
        raise InputError(f"{out / clobbered[0]} is a key of this command; in-betweens never replace their keys, "
                         "whatever --overwrite says. Choose another --out or --name.")
    project = enclosing_project(out / taken[0]) if taken else None
    if project is not None:
        raise ExportError(f"{out / taken[0]} belongs to the project in {project}; a project's files are never "
                          "replaced from outside it, whatever --overwrite says. Choose another --out or --name.")
    if taken and not args.overwrite:
        shown = ", ".join(taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise ExportError(f"{out} already holds {shown}; pass --overwrite to replace them, or choose "
                          "another --out or --name.")

    if args.engine == "tooncrafter" and not quiet:
        print(describe_plan(params, times), file=sys.stderr)
    request = InterpolationRequest(start=start, end=end, times=times, params=params, seed=args.seed,
                                   prompt=args.prompt)
    cancel = CancelToken()
    with TqdmProgress(quiet=quiet) as progress:
        engine.load(progress, cancel)
        try:
            result = engine.interpolate(request, progress, cancel)
        finally:
            engine.unload()
    frames = result.frames
    if len(frames) != len(times):
        raise StudioError(f"The {args.engine} engine returned {len(frames)} frames for {len(times)} times.")

    names = planned
    written: list[Path] = []
    try:
        for name, frame in zip(names, frames):
            if frame.shape[:2] != start.shape[:2]:  # engines must return the keys' size; be safe
                frame = cv2.resize(frame, (start.shape[1], start.shape[0]), interpolation=cv2.INTER_AREA)
            path = out / name
            write_png(path, frame, error=ExportError)
            written.append(path)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    print(f"Wrote {len(written)} in-between(s) to {out}: {names[0]}" + (f" .. {names[-1]}" if len(names) > 1 else ""))
    if not quiet:
        for line in confidence_lines(result.info):
            print(line, file=sys.stderr)
    return 0
