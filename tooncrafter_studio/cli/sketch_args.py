"""Sketch options of `interpolate`: --sketch T=PATH, --sketch-dir DIR, --sketch-scale, --sketch-context,
--sketch-encoder, --sketch-snap. Reads the files, maps each to an in-between time and hands the
engine `Sketch` entries; the placement notes are printed by the command."""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

from ..core.errors import InputError, MediaError
from ..engines.sketch import CONTEXTS, Sketch
from ..media import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sketch guidance (tooncrafter engine)")
    g.add_argument("--sketch", action="append", default=[], metavar="T=PATH",
                   help="line art for one in-between: T is a time in (0,1) (e.g. 0.5) or the in-between's "
                        "number (1 = the first); repeatable")
    g.add_argument("--sketch-dir", metavar="DIR",
                   help="a folder of sketches named by frame: the last number in a file name is the in-between's "
                        "number as the output files count (--start-number)")
    g.add_argument("--sketch-scale", type=float, help="sketch strength 0..1.5 (default 0.6)")
    g.add_argument("--sketch-context", choices=CONTEXTS, help="what the sketch encoder attends to: text (the "
                   "first 77 tokens, default) or all (text and image tokens)")
    g.add_argument("--sketch-encoder", help="sketch_encoder.ckpt / .safetensors (default: next to the model)")
    g.add_argument("--sketch-snap", action="store_true",
                   help="move each sketched in-between to the generated frame its sketch guides")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sketch(path: Path, time: float) -> Sketch:
    if not path.is_file():
        raise MediaError(f"Sketch {path} does not exist." if not path.exists() else f"Sketch {path} is not a file.")
    return Sketch(time, read_image(path), path.name, _file_digest(path))


def _time_of(text: str, times: list[float], spec: str) -> float:
    """A time in (0, 1) (has a decimal point) or an in-between number 1..N."""
    text = text.strip()
    try:
        if re.fullmatch(r"[0-9]{1,12}", text):  # ASCII digits, as every frame number (core/frame_ranges)
            index = int(text)
            if not (1 <= index <= len(times)):
                raise InputError(f"--sketch {spec}: in-between {index} does not exist (there are {len(times)}).")
            return times[index - 1]
        value = float(text)
    except ValueError:
        raise InputError(f"--sketch {spec}: '{text}' is neither a time in (0,1) nor an in-between number.") from None
    if not (0.0 < value < 1.0):
        raise InputError(f"--sketch {spec}: the time {value:g} is not between the keys (0 and 1).")
    return value


def collect_sketches(args: argparse.Namespace, times: list[float]) -> list[Sketch]:
    """The sketches the options name, each at its time; bad specs and files are clear errors."""
    found: list[Sketch] = []
    for spec in args.sketch or []:
        when, sep, path = spec.partition("=")
        if not sep or not path:
            raise InputError(f"--sketch {spec}: give TIME=PATH, e.g. --sketch 0.5=pose.png or --sketch 3=pose.png.")
        found.append(read_sketch(Path(path), _time_of(when, times, spec)))
    if args.sketch_dir:
        folder = Path(args.sketch_dir)
        if not folder.is_dir():
            raise MediaError(f"--sketch-dir {folder} is not a folder.")
        start_number = getattr(args, "start_number", 1)
        for path in sorted(folder.iterdir()):
            numbers = re.findall(r"\d+", path.stem)
            if path.suffix.lower() not in IMAGE_SUFFIXES or not numbers:
                continue
            index = int(numbers[-1]) - start_number
            if not (0 <= index < len(times)):
                raise InputError(f"--sketch-dir: {path.name} is numbered {numbers[-1]}, but the in-betweens are "
                                 f"numbered {start_number}..{start_number + len(times) - 1}.")
            found.append(read_sketch(path, times[index]))
        if not any(s.name for s in found):
            raise InputError(f"--sketch-dir {folder} holds no image named by frame number.")
    return sorted(found, key=lambda sketch: sketch.time)
