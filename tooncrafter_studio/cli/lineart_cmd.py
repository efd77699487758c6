"""`tooncrafter-studio lineart IMAGE OUT.png [--method xdog|threshold] [--strength S] [--overwrite]`:
a clean sketch hint (black lines on white) from a colour pose or a key, for --sketch or the studio's sketch row.
An existing OUT is replaced only with --overwrite; the input and a project's files never are."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import ExportError, MediaError
from ..export.overwrite import check_replace
from ..media import read_image, write_png
from ..media.lineart import METHODS, line_art


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lineart", help="line art from an image (a sketch for sketch guidance)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("out", metavar="OUT", help="the PNG to write")
    p.add_argument("--method", choices=METHODS, default="xdog", help="xdog (default) or threshold")
    p.add_argument("--strength", type=float, default=1.0, help="line detail 0.25..4 (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it exists (never the input, never a file of a project)")
    p.set_defaults(handler=run_lineart)


def run_lineart(args: argparse.Namespace) -> int:
    source = Path(args.image)
    if not source.is_file():
        raise MediaError(f"{source} does not exist or is not a file.")
    out = Path(args.out)
    check_replace(out, [source], args.overwrite)  # before the work, and again just before writing
    art = line_art(read_image(source), args.method, args.strength)
    check_replace(out, [source], args.overwrite)
    write_png(out, art, error=ExportError)
    print(f"Wrote line art ({args.method}) to {args.out}")
    return 0
