"""`tooncrafter-studio sketches PROJECT_DIR`: place, remove and list the sketches on in-between
cells, and set a segment's sketch strength; `generate` then uses them.

    tooncrafter-studio sketches shot01 --add 5=pose.png --add 13=pose2.png
    tooncrafter-studio sketches shot01 --remove 5
    tooncrafter-studio sketches shot01 --pair 1:9 --scale 0.8
"""

from __future__ import annotations

import argparse

from ..core.errors import InputError
from ..core.frame_ranges import parse_frame
from .project_cmds import open_for_editing


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sketches", help="place or remove sketches on in-between frames (sketch guidance)")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("--add", action="append", default=[], metavar="FRAME=PATH",
                   help="put the image on the in-between at this timeline frame (copied into the project)")
    p.add_argument("--remove", action="append", default=[], metavar="FRAME", help="remove a sketch")
    p.add_argument("--pair", metavar="A:B", help="the key pair whose strength --scale sets")
    p.add_argument("--scale", type=float, help="sketch strength 0..1.5 for --pair")
    p.set_defaults(handler=run_sketches)


def run_sketches(args: argparse.Namespace) -> int:
    from ..media.sketch_files import import_sketch_image
    from ..pipeline.jobs import parse_pair
    from ..project.resolve import key_spans
    from ..project.sketches import PlaceSketch, RemoveSketch, SetSketchScale

    project = open_for_editing(args.project)
    shot = project.shot
    spans = key_spans(shot)

    def span_for(frame: int):
        span = next((s for s in spans if s.start_frame < frame < s.start_frame + s.gap), None)
        if span is None:
            raise InputError(f"Frame {frame} is not between two keys; sketches go on in-between frames.")
        return span

    if (args.scale is None) != (args.pair is None):
        raise InputError("--scale and --pair go together (the strength is per key pair).")
    with project.stack.macro("Sketches"):
        for spec in args.add:
            frame_text, sep, path = spec.partition("=")
            if not sep or not path:
                raise InputError(f"--add {spec}: give FRAME=PATH, e.g. --add 5=pose.png.")
            frame = parse_frame(frame_text, shot.frame_count, "--add frame")
            span = span_for(frame)
            project.push(PlaceSketch(span.key, frame - span.start_frame, import_sketch_image(project.folder, path)))
        for text in args.remove:
            frame = parse_frame(text, shot.frame_count, "--remove frame")
            span = span_for(frame)
            project.push(RemoveSketch(span.key, frame - span.start_frame))
        if args.scale is not None:
            project.push(SetSketchScale(parse_pair(shot, args.pair).key, args.scale))
    project.save()
    for span in spans:
        segment = shot.segments.get(span.key)
        if segment is None or not segment.settings.sketches:
            continue
        placed = ", ".join(f"{span.start_frame + o} ({ref.name})" for o, ref in sorted(segment.settings.sketches.items()))
        print(f"keys {span.start_frame}:{span.start_frame + span.gap}: sketches at {placed}; "
              f"strength {segment.settings.sketch_scale:g}")
    return 0
