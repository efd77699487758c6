"""`tooncrafter-studio export PROJECT_DIR --out DIR ...`: write the shot as a PNG sequence."""

from __future__ import annotations

import argparse
import os

from ..core.errors import InputError
from ..export import PRESETS, ExportOptions, export_sequence
from ..export.exporter import TIMING_SHEETS, MissingDrawingsError
from .progress import TqdmProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export the shot as a PNG sequence with a timing sheet",
        description="Write keys and accepted in-betweens as a PNG sequence named for your compositing "
                    "tool, plus a timing sheet and a provenance sidecar. Existing files are never "
                    "overwritten unless --overwrite is given (files of an earlier export to the same "
                    "folder are replaced).")
    p.add_argument("project", metavar="PROJECT_DIR", help="the project folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="opentoonz",
                   help="naming preset: opentoonz name.0001.png, aftereffects name_00001.png, "
                        "nuke name.1001.png, blender name0001.png, krita name0000.png (default: opentoonz)")
    p.add_argument("--name", help="base file name (default: the shot's name)")
    p.add_argument("--separator", choices=[".", "_", "none"], help="between the name and the number")
    p.add_argument("--padding", type=int, metavar="P", help="digits in the frame number")
    p.add_argument("--start-number", type=int, metavar="S", help="number of the first file")
    p.add_argument("--include-pending", action="store_true",
                   help="also write in-betweens not yet reviewed (rejected ones never are)")
    p.add_argument("--drawings-only", action="store_true",
                   help="one file per drawing instead of one per frame; the timing sheet holds the timing")
    p.add_argument("--timing-sheet", choices=TIMING_SHEETS, default="both",
                   help="CSV exposure sheet, XDTS, both (default) or none")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                   help="encoding threads (default: up to 4)")
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..project.project import open_project  # the project layer is loaded only for this command

    if args.workers < 1:
        raise InputError("--workers must be at least 1.")
    project = open_project(args.project)
    options = ExportOptions(
        out_dir=args.out, preset=args.preset, name=args.name, separator=args.separator, padding=args.padding,
        start_number=args.start_number, include_pending=args.include_pending, drawings_only=args.drawings_only,
        timing_sheet=args.timing_sheet, overwrite=args.overwrite, workers=args.workers)
    try:
        with TqdmProgress(quiet=args.quiet) as progress:
            report = export_sequence(project.folder, project.shot, options, progress)
    except MissingDrawingsError as exc:
        raise InputError(f"{exc.summary} Find them with: tooncrafter-studio relink {args.project} --source FOLDER "
                         "(the folder that holds them now), then export again.") from None
    for warning in report.warnings:
        print(f"warning: {warning}")
    what = "drawings" if args.drawings_only else "frames"
    print(f"Wrote {len(report.files)} {what} to {report.out_dir}: {report.first} .. {report.last}"
          + (f" and {', '.join(report.sheets)}" if report.sheets else "") + f" in {report.seconds:.1f} s.")
    if report.held_in_place:
        # one entry per in-between left out (its first frame), however long its exposure
        print(f"{len(report.held_in_place)} in-between(s) rejected or not included: the previous drawing "
              "is held in their place (see the timing sheet).")
    if report.removed_stale:
        print(f"Removed {len(report.removed_stale)} file(s) of the earlier export that are no longer in the shot.")
    return 0
