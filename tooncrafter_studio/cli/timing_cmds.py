"""`timing import` and `timing export`: time a shot from an XDTS or CSV sheet, write its timing back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("timing", help="import a timing sheet (XDTS, CSV) into a project, or export one",
                              description="Timing sheets: the exposures, and the frames to in-between.")
    sub = p.add_subparsers(dest="timing_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: _usage(p))

    q = sub.add_parser("import", help="set the cells, keys and in-between frames from a sheet",
                       description="Re-time the project from an XDTS or CSV timing sheet: cells and holds from "
                                   "one cell track, the drawn cells as keys, and each in-between mark as a frame "
                                   "`generate` will make. Drawings are matched to the sheet's names by name or "
                                   "number (A1, 1, 0001); unmatched names are listed and show blank. One undoable "
                                   "step in the app.")
    q.add_argument("project", metavar="PROJECT_DIR")
    q.add_argument("sheet", metavar="SHEET", help="an .xdts file or a CSV exposure sheet")
    q.add_argument("--track", default=None, metavar="NAME", help="the cell track to use (default: the first)")
    q.add_argument("--fps", type=float, default=None, help="frame rate of the shot (XDTS sheets carry none)")
    q.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    q.set_defaults(handler=run_import)

    q = sub.add_parser("export", help="write the shot's timing as an XDTS sheet (or an OpenTimelineIO timeline)",
                       description="Write the cells, holds, empty cells and in-between marks of the shot as an "
                                   "XDTS sheet, with the tracks, dialogue and camera work of an imported sheet. "
                                   "A name ending in .otio writes an OpenTimelineIO timeline for editorial "
                                   "(the editorial extra).")
    q.add_argument("project", metavar="PROJECT_DIR")
    q.add_argument("out", metavar="OUT.xdts|OUT.otio")
    q.add_argument("--overwrite", action="store_true", help="replace an existing file")
    q.set_defaults(handler=run_export)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def plan_for(shot, sheet, sheet_path: str, track: str | None, fps: float | None):
    """The import plan; its errors name the sheet."""
    from ..export.sheet_timing import plan_import

    try:
        return plan_import(shot, sheet, track, fps)
    except InputError as exc:
        raise InputError(f"{Path(sheet_path).name}: {exc}") from None


def print_plan(plan) -> None:
    for line in plan.summary():
        print(line)


def run_import(args: argparse.Namespace) -> int:
    from ..export.sheet_io import read_sheet
    from .project_cmds import open_for_editing

    sheet = read_sheet(args.sheet)  # a bad sheet fails before the project is touched
    project = open_for_editing(args.project, "timing import")
    plan = plan_for(project.shot, sheet, args.sheet, args.track, args.fps)
    print_plan(plan)
    for name, (frames, why) in plan.unmatched.items():
        print(f"warning: no drawing for the sheet's '{name}' (frames {', '.join(map(str, frames[:10]))}): {why}.",
              file=sys.stderr)
    if args.dry_run:
        print("Dry run: nothing changed.")
        return 0
    project.push(plan.command())
    project.save()
    print(f"Timed {project.folder} from {Path(args.sheet).name}; `tooncrafter-studio generate {args.project}` makes "
          f"the {plan.inbetweens} marked in-between{'s' if plan.inbetweens != 1 else ''}.")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..core.errors import ExportError
    from ..core.fsio import atomic_write_text
    from ..export.sheet_io import xdts_sheet_text
    from ..export.sheet_timing import shot_sheet
    from ..project.project import open_project

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; add --overwrite to replace it.")
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name ending in .xdts.")
    if out.suffix.lower() not in (".xdts", ".otio"):
        raise InputError(f"{out.name}: name the file .xdts (a timing sheet) or .otio (OpenTimelineIO).")
    project = open_project(args.project)
    if out.suffix.lower() == ".otio":
        from ..export.otio_export import otio_text

        atomic_write_text(out, otio_text(project.shot, project.folder), error=ExportError)
        print(f"Wrote {out}: {project.shot.frame_count} frames at {project.shot.fps:g} fps.")
        return 0
    sheet = shot_sheet(project.shot)
    atomic_write_text(out, xdts_sheet_text(sheet), error=ExportError)
    print(f"Wrote {out}: {sheet.duration} frames, {len(sheet.tracks)} track{'s' if len(sheet.tracks) != 1 else ''}.")
    return 0
