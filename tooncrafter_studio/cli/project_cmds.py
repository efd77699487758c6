"""`new`, `info` and `keys`: make a project from footage, describe it, mark keyframes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Any

from ..core.errors import InputError
from ..core.frame_ranges import parse_frames
from .progress import TqdmProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("new", help="create a project from an image sequence, images or a video",
                              description="Create a project folder from footage: a folder of numbered images, "
                                          "a pattern (name.####.png, name_%%04d.png), image files or a video.")
    p.add_argument("project", metavar="PROJECT_DIR", help="the project folder to create")
    p.add_argument("--source", required=True, action="append", metavar="PATH",
                   help="footage: a folder, a pattern, a video; repeat for loose image files")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the shot (default: the video's, or 24 for images)")
    p.add_argument("--detect-holds", action="store_true",
                   help="identical consecutive frames become one drawing held longer (animation on 2s, 3s)")
    p.add_argument("--name", default=None, help="shot name (default: the folder name)")
    p.add_argument("--timing", default=None, metavar="SHEET",
                   help="time the shot from an XDTS or CSV timing sheet (see `timing import`)")
    p.add_argument("--track", default=None, metavar="NAME", help="with --timing: the sheet's cell track to use")
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    p.set_defaults(handler=run_new)

    p = subparsers.add_parser("info", help="describe a project: frames, drawings, keys, segments, takes")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_info)

    p = subparsers.add_parser("keys", help="mark (or unmark) keyframes by timeline frame",
                              description="Mark the drawings shown on the given timeline frames as keys. "
                                          "Consecutive keys bound the segments that get in-betweens.")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("--frames", default=None, metavar="LIST", help="timeline frames, e.g. 1,9,17 or 1-5,9")
    p.add_argument("--remove", action="store_true", help="unmark the given frames instead of marking them")
    p.add_argument("--clear", action="store_true", help="unmark every key first")
    p.set_defaults(handler=run_keys)

    p = subparsers.add_parser("arc", help="bend (or straighten) the path of a segment's motion",
                              description="Store an arc with the segment that starts at a key: the flow engine "
                                          "moves shapes through X,Y (fractions of the frame's width and height, "
                                          "offset from the straight line) at mid-segment. Undoable in the app.")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("--segment", type=int, required=True, metavar="FRAME",
                   help="timeline frame of the segment's start key")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--offset", default=None, metavar="X,Y", help="e.g. 0,-0.2: the path a fifth of the height higher")
    g.add_argument("--straight", action="store_true", help="remove the arc")
    p.set_defaults(handler=run_arc)

    p = subparsers.add_parser("relink", help="find missing drawings in another folder (nothing is copied)",
                              description="Point the project at the folder where its drawings are now, e.g. "
                                          "after copying the project to another disk or machine. Folders "
                                          "under --source are searched for the same file names with the same "
                                          "content; files stay where they are.")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("--source", required=True, metavar="DIR", help="folder that holds the drawings (searched "
                   "a few levels deep)")
    p.set_defaults(handler=run_relink)


SHARED_WRITES_ENV = "TOONCRAFTER_STUDIO_SHARED_WRITES"


def open_for_editing(folder: str, command: str = "edit", shared: bool = False):
    """Open a project for a headless edit, warning when a crashed session left unsaved work."""
    from ..project.project import find_recovery, open_project

    project = open_project(folder)
    # shared: writers that coordinate with short write locks (generate: farm tasks fill one project side by
    # side); TOONCRAFTER_STUDIO_SHARED_WRITES=1 makes every command one. All respect an exclusive owner.
    project.claim(f"the command 'tooncrafter-studio {command}'",
                  shared=shared or os.environ.get(SHARED_WRITES_ENV, "") not in ("", "0"))
    if find_recovery(project.folder, lambda text: print(f"warning: {text}", file=sys.stderr)) is not None:
        print(f"warning: {project.folder} has unsaved changes from an earlier session (a recovery copy); "
              "open it in the app to recover them.", file=sys.stderr)
    from ..project.moved_copy import original_location_notes

    for note in original_location_notes(project.shot):
        print(f"warning: {note}", file=sys.stderr)
    return project


def run_new(args: argparse.Namespace) -> int:
    from ..media import import_source
    from ..project.project import new_project

    if args.fps is not None and not 0.1 <= args.fps <= 1000:
        raise InputError(f"--fps must be between 0.1 and 1000, not {args.fps:g}.")
    timing = getattr(args, "timing", None)
    if getattr(args, "track", None) is not None and timing is None:
        raise InputError("--track chooses a track of the --timing sheet; give --timing SHEET too.")
    sheet = None
    if timing is not None:
        from ..export.sheet_io import read_sheet

        sheet = read_sheet(timing)  # a bad sheet fails before anything is created
    sources = args.source if len(args.source) > 1 else args.source[0]
    kwargs = {"default_fps": args.fps} if args.fps is not None else {}
    with TqdmProgress(quiet=getattr(args, "quiet", False)) as progress:
        result = import_source(sources, detect_holds=args.detect_holds, progress=progress, **kwargs)
    if sheet is not None:
        from ..project.project import shot_from_source
        from .timing_cmds import plan_for

        plan_for(shot_from_source(result.source, result.groups, args.fps), sheet, timing, args.track, args.fps)
    project = new_project(args.project, result.source, result.groups, args.fps, args.name)
    shot = project.shot
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if sheet is not None:
        from .timing_cmds import plan_for, print_plan

        plan = plan_for(shot, sheet, timing, args.track, args.fps)
        print_plan(plan)
        for name, (frames, why) in plan.unmatched.items():
            print(f"warning: no drawing for the sheet's '{name}' (frames {', '.join(map(str, frames[:10]))}): "
                  f"{why}.", file=sys.stderr)
        project.push(plan.command())
        project.save()
    held = sum(1 for cell in shot.cells if cell.length > 1)
    print(f"Created {project.folder}: {shot.frame_count} frames, {len(shot.drawings)} drawings"
          + (f" ({held} held)" if args.detect_holds else "")
          + f", {shot.width}x{shot.height} at {shot.fps:g} fps.")
    return 0


def _take_confidence(take) -> dict[str, Any]:
    """The engine's own confidence in a take's in-betweens and its warning, when it gave them."""
    info = take.params.get("engine_info") if isinstance(take.params, dict) else None
    if not isinstance(info, dict):
        return {}
    out: dict[str, Any] = {}
    confidence = info.get("confidence")
    if isinstance(confidence, list) and confidence and all(isinstance(c, (int, float)) for c in confidence):
        out["confidence"] = [float(c) for c in confidence]
    if isinstance(info.get("message"), str) and info["message"]:
        out["message"] = info["message"]
    return out


def describe(project) -> dict[str, Any]:
    """Everything `info` shows, as JSON data."""
    from ..pipeline.jobs import plan_inbetweens
    from ..project.commands import segment_settings
    from ..project.moved_copy import original_location_notes
    from ..project.orphan_takes import find_orphan_takes
    from ..project.project import find_recovery
    from ..project.relink import missing_drawings
    from ..project.resolve import key_spans
    from ..project.serialize import SCHEMA_VERSION

    shot = project.shot
    starts: dict[str, int] = {}
    frame = 1
    for cell in shot.cells:
        starts.setdefault(cell.drawing_id, frame)
        frame += cell.length
    keys = [{"frame": starts[d.id], "drawing": d.id, "label": d.label or f"{d.source_frame + 1:04d}"}
            for d in shot.drawings.values() if d.is_key and d.id in starts]
    keys.sort(key=lambda k: k["frame"])
    segments = []
    for span in key_spans(shot):
        settings = segment_settings(shot, span.key)
        segment = shot.segments.get(span.key)
        try:
            plan = plan_inbetweens(span.gap, settings)
            planned: dict[str, Any] = {"count": len(plan.times), "offsets": plan.offsets, "mode": plan.count_mode}
        except InputError as exc:
            planned = {"error": str(exc)}
        takes = []
        for take_id in segment.take_ids if segment else []:
            take = shot.takes[take_id]
            counts = Counter(str(f.status.value) if hasattr(f.status, "value") else str(f.status)
                             for f in take.frames)
            takes.append({"id": take.id, "label": take.label, "frames": len(take.frames),
                          "accepted": counts["accepted"], "rejected": counts["rejected"],
                          "pending": counts["pending"], "engine": take.engine.get("engine", ""),
                          "seed": take.seed, "created": take.created,
                          "active": segment is not None and segment.active_take == take.id,
                          **_take_confidence(take)})
        segments.append({
            "start_frame": span.start_frame, "end_frame": span.start_frame + span.gap, "gap": span.gap,
            "start_key": span.start_key, "end_key": span.end_key,
            "settings": {"count": settings.count, "exposure": settings.exposure,
                         "spacing": str(settings.spacing.value if hasattr(settings.spacing, "value")
                                        else settings.spacing),
                         "times": settings.times, "engine": settings.engine, "params": settings.params,
                         "prompt": settings.prompt, "seed": settings.seed,
                         "arc": list(settings.arc) if settings.arc is not None else None},
            "planned": planned,
            "active_take": segment.active_take if segment else None,
            "takes": takes,
        })
    return {
        "project": str(project.folder),
        "schema_version": SCHEMA_VERSION,
        "name": shot.name,
        "fps": shot.fps,
        "width": shot.width,
        "height": shot.height,
        "has_alpha": shot.has_alpha,
        "bit_depth": shot.bit_depth,
        "frames": shot.frame_count,
        "cells": len(shot.cells),
        "drawings": len(shot.drawings),
        "sources": [{"id": s.id, "kind": str(s.kind.value if hasattr(s.kind, "value") else s.kind),
                     "path": s.path, "frames": s.frame_count, "gaps": s.gaps} for s in shot.sources.values()],
        "keys": keys,
        "segments": segments,
        "takes": len(shot.takes),
        "missing_drawings": len(missing_drawings(shot, project.folder)),
        "original_location": original_location_notes(shot),
        "unlisted_takes": [take.id for take in find_orphan_takes(project)],
        "recovery_available": find_recovery(project.folder, _warn) is not None,
        "timing_sheet": _sheet_info(shot),
    }


def _sheet_info(shot) -> dict[str, Any] | None:
    """The imported timing sheet: which track the cells follow and what it keeps read-only."""
    from ..project.timing_sheet import FIELD_NAMES

    sheet = shot.sheet
    if sheet is None:
        return None
    return {"name": sheet.name, "format": sheet.source_format, "duration": sheet.duration, "track": shot.sheet_track,
            "other_tracks": [t.name for t in sheet.cell_tracks if t.name != shot.sheet_track],
            "fields": [{"field": FIELD_NAMES.get(t.field_id, str(t.field_id)), "name": t.name,
                        "entries": [{"frame": e.frame + 1, "values": list(e.values)} for e in t.entries]}
                       for t in sheet.other_tracks]}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def run_info(args: argparse.Namespace) -> int:
    from ..project.project import open_project

    data = describe(open_project(args.project))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{data['name']}  ({data['project']})")
    print(f"  {data['frames']} frames at {data['fps']:g} fps, {data['width']}x{data['height']}"
          f"{' RGBA' if data['has_alpha'] else ''}{' 16-bit' if data['bit_depth'] == 16 else ''}; "
          f"{data['drawings']} drawings in {data['cells']} cells")
    for source in data["sources"]:
        if source["kind"] == "blank":  # no files: what empty cells and undrawn names of a sheet show
            print(f"  source {source['id']}: blank (the timing sheet's empty cells and names with no drawing)")
            continue
        print(f"  source {source['id']}: {source['kind']}, {source['frames']} frames, {source['path']}")
    print("  keys: " + (", ".join(str(k["frame"]) for k in data["keys"]) if data["keys"] else "none "
                        "(mark them with: tooncrafter-studio keys PROJECT_DIR --frames 1,9,17)"))
    for seg in data["segments"]:
        planned = seg["planned"]
        plan = (f"{_plural(planned['count'], 'in-between')} at +{', +'.join(str(o) for o in planned['offsets'])}"
                if "count" in planned else planned["error"])
        arc = seg["settings"].get("arc")
        print(f"  segment {seg['start_frame']}-{seg['end_frame']} ({seg['gap']} frames, "
              f"{seg['settings']['spacing']}, {seg['settings']['engine']}"
              f"{f', arc {arc[0]:+g},{arc[1]:+g}' if arc else ''}): {plan}")
        for take in seg["takes"]:
            mark = "*" if take["active"] else " "
            confidence = (f"; confidence {min(take['confidence']):.2f}" if take.get("confidence") else "")
            print(f"    {mark} take {take['label'] or take['id']} ({take['id']}): {_plural(take['frames'], 'frame')}, "
                  f"{take['accepted']} accepted, {take['rejected']} rejected, {take['pending']} pending; "
                  f"{take['engine']}, seed {take['seed']}{confidence}")
            if take.get("message"):
                print(f"      warning: {take['message']}")
    for note in data["original_location"]:
        print(f"  {note}")
    sheet = data["timing_sheet"]
    if sheet is not None:
        others = f"; other tracks kept: {', '.join(sheet['other_tracks'])}" if sheet["other_tracks"] else ""
        print(f"  timed by sheet '{sheet['name']}' ({sheet['format']}, {sheet['duration']} frames), track "
              f"'{sheet['track']}'{others}")
        for field in sheet["fields"]:
            entries = ", ".join(f"{e['frame']}: {' '.join(e['values'])}" for e in field["entries"][:8])
            print(f"    {field['field']} '{field['name']}': {entries or 'no entries'}")
    if data["missing_drawings"]:
        print(f"  {_plural(data['missing_drawings'], 'drawing')} missing: their files are not where the project "
              f"says; find them with: tooncrafter-studio relink {data['project']} --source DIR")
    if data["unlisted_takes"]:
        count = len(data["unlisted_takes"])
        print(f"  {_plural(count, 'generated take')} in takes/ {'is' if count == 1 else 'are'} not in the project "
              "(the app was probably closed before recording it); open the project in the app to add "
              f"{'it' if count == 1 else 'them'} back")
    if data["recovery_available"]:
        print("  a recovery copy with unsaved changes exists; open the project in the app to recover it")
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from ..project.commands import SetKeys
    from ..project.resolve import cell_at

    if args.frames is None and not args.clear:
        raise InputError("Give --frames (e.g. --frames 1,9,17), --clear, or both.")
    if args.remove and args.clear:
        raise InputError("--remove and --clear do not go together; --clear already removes every key.")
    project = open_for_editing(args.project, "keys")
    shot = project.shot
    frames = parse_frames(args.frames, shot.frame_count) if args.frames is not None else []
    with project.stack.macro("Keys"):
        if args.clear:
            project.push(SetKeys([d.id for d in shot.drawings.values() if d.is_key], False))
        if frames:
            project.push(SetKeys.at_frames(shot, frames, not args.remove))
    project.save()
    for frame in frames:
        _index, start = cell_at(shot, frame)
        if start != frame:
            print(f"note: frame {frame} holds the drawing of frame {start}; that drawing is the key.")
    key_frames = describe_keys(project)
    print("Keys at frames " + (", ".join(str(f) for f in key_frames) if key_frames else "(none)") + ".")
    return 0


def run_arc(args: argparse.Namespace) -> int:
    from ..project.commands import SetSegmentArc
    from ..project.document import check_arc
    from ..project.resolve import key_spans

    arc = None
    if args.offset is not None:
        try:
            arc = check_arc([float(v) for v in args.offset.split(",")])
        except ValueError:
            raise InputError(f"--offset '{args.offset}' is not two numbers X,Y.") from None
    project = open_for_editing(args.project, "arc")
    spans = [s for s in key_spans(project.shot) if s.start_frame == args.segment]
    if not spans:
        starts = ", ".join(str(s.start_frame) for s in key_spans(project.shot)) or "none"
        raise InputError(f"No segment starts at frame {args.segment} (segments start at: {starts}).")
    project.push(SetSegmentArc(spans[0].key, arc))
    project.save()
    span = spans[0]
    where = f"frames {span.start_frame}-{span.start_frame + span.gap}"
    print(f"Segment {where}: " + (f"arc {arc[0]:+g},{arc[1]:+g}." if arc else "straight path."))
    return 0


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def run_relink(args: argparse.Namespace) -> int:
    from ..project.relink import RelinkSources, missing_drawings, relink_plan

    project = open_for_editing(args.project, "relink")
    shot = project.shot
    before = len(missing_drawings(shot, project.folder))
    if not before:
        print(f"No drawings are missing from {project.folder}; nothing to relink.")
        return 0
    plan = relink_plan(shot, project.folder, args.source)
    for note in plan.notes:
        _warn(note)
    if not plan.paths:
        raise InputError(f"None of the {_plural(before, 'missing drawing')} of {project.folder} is under "
                         f"{args.source} (same file names and content).")
    project.push(RelinkSources(plan.paths))
    project.save()
    after = len(missing_drawings(shot, project.folder))
    for source_id, found in plan.found.items():
        print(f"source {source_id}: {found}")
    print(f"Relinked {_plural(before - after, 'drawing')}" + (f"; {after} still missing." if after else "."))
    return 0


def describe_keys(project) -> list[int]:
    frame = 1
    found: list[int] = []
    for cell in project.shot.cells:
        if project.shot.drawings[cell.drawing_id].is_key:
            found.append(frame)
        frame += cell.length
    return found
