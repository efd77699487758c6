"""`review PROJECT accept|reject|pending FRAMES`: approve in-betweens headlessly (undoable in the app).

FRAMES are timeline frames ("5", "3,5,7", "3-7") or "all". A frame names the in-between drawn on
it (a hold of an in-between names that in-between); a frame that is a key or has no take is an
error when listed on its own, and skipped inside a range.
"""

from __future__ import annotations

import argparse

from ..core.errors import InputError
from ..core.frame_ranges import parse_frame_items

STATUSES = ("accept", "reject", "pending")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "review", help="accept, reject or reset generated in-betweens by timeline frame",
        description="Set the review status of in-betweens of the active takes, so that a headless pipeline "
                    "can approve frames before `export` (which skips pending ones unless --include-pending). "
                    "Rejected frames can be redrawn with `generate --redo-rejected`.")
    p.add_argument("project", metavar="PROJECT_DIR")
    p.add_argument("status", choices=STATUSES, help="accept, reject, or pending (undecided again)")
    p.add_argument("frames", metavar="FRAMES", help="timeline frames: 5 / 3,5,7 / 3-7 / all")
    p.set_defaults(handler=run_review)


def run_review(args: argparse.Namespace) -> int:
    from ..project.commands import SetFrameStatus
    from ..project.document import ReviewStatus
    from ..project.resolve import key_spans, span_containing, take_frame_at
    from .project_cmds import open_for_editing

    status = {"accept": ReviewStatus.ACCEPTED, "reject": ReviewStatus.REJECTED,
              "pending": ReviewStatus.PENDING}[args.status]
    project = open_for_editing(args.project)
    shot = project.shot
    spans = key_spans(shot)
    chosen: dict[str, set[int]] = {}  # take id -> indices
    for frame, alone in parse_frame_items(args.frames, shot.frame_count, allow_all=True):
        span = span_containing(shot, frame, spans)
        found = take_frame_at(shot, span, frame) if span is not None else None
        if found is None:
            if alone:
                raise InputError(f"Frame {frame} is not a generated in-between (a key, or a pair with no take yet).")
            continue
        chosen.setdefault(found[0], set()).add(found[1])
    if not chosen:
        raise InputError(f"No generated in-between in frames {args.frames}: generate takes first.")
    with project.stack.macro(f"Review: {args.status}"):
        for take_id, indices in chosen.items():
            project.push(SetFrameStatus(take_id, sorted(indices), status))
    project.save()
    count = sum(len(i) for i in chosen.values())
    labels = ", ".join(f"{shot.takes[t].label or t}-{i + 1}" for t, idx in chosen.items() for i in sorted(idx))
    print(f"{count} in-between{'s' if count != 1 else ''} now {status.value}: {labels}.")
    return 0
