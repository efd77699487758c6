"""`generate`: run in-betweening jobs on a project headlessly and store the results as takes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core.errors import InputError
from .progress import TqdmProgress

SPACING_CHOICES = ("linear", "ease-in", "ease-out", "ease-in-out")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate in-betweens for key pairs of a project and store them as takes",
        description="Generate in-betweens for key pairs of a project (for batches and render farms). "
                    "Each pair gets a new take, saved into the project; review it in the app or export it. "
                    "Settings not given here come from each segment's settings in the project.")
    p.add_argument("project", metavar="PROJECT_DIR")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pair", action="append", metavar="A:B",
                       help="timeline frames of two neighbouring keys, e.g. 1:9 (repeat for more)")
    which.add_argument("--all", action="store_true", help="every key pair (the default)")
    p.add_argument("--count", type=int, default=None, help="in-betweens per pair (default: from gap and exposure)")
    p.add_argument("--spacing", choices=SPACING_CHOICES, default=None, help="timing of the in-betweens")
    p.add_argument("--times", default=None, metavar="T1,T2,...", help="explicit times in (0, 1)")
    p.add_argument("--engine", default=None, help="engine id (default: each segment's, usually flow)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="engine parameter (VALUE read as JSON when it parses, else text); repeatable")
    p.add_argument("--preset", choices=("draft", "final"), default=None,
                   help="ToonCrafter speed preset: draft = 15 steps, final = 50; --param steps=N overrides")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the segment's, or a fresh one)")
    p.add_argument("--prompt", default=None, help="text prompt for engines that take one")
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    p.set_defaults(handler=run_generate)


def parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param '{item}' should look like NAME=VALUE, e.g. steps=25.")
        try:
            params[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[name.strip()] = value
    return params


def parse_times(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--times '{text}' should be numbers separated by commas, e.g. 0.25,0.5,0.75.") from None


def run_generate(args: argparse.Namespace) -> int:
    from ..engines.registry import create_engine
    from ..pipeline.jobs import parse_pair, segment_job
    from ..pipeline.runner import check_engine, run_job
    from ..project.resolve import key_spans
    from .project_cmds import open_for_editing

    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be at least 1, not {args.count}.")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise InputError(f"--seed must be a whole number from 0 to 2^63-1, not {args.seed}.")
    times = parse_times(args.times) if args.times is not None else None
    if times is not None and args.spacing is not None:
        raise InputError("--times and --spacing do not go together: explicit times already set the spacing.")
    if times is not None and args.count is not None and args.count != len(times):
        raise InputError(f"--count {args.count} does not match the {len(times)} --times given.")
    params = parse_params(args.param)

    project = open_for_editing(args.project)
    shot = project.shot
    spans = key_spans(shot)
    if not spans:
        raise InputError(f"{project.folder} has fewer than two keys; mark them first, e.g. "
                         "tooncrafter-studio keys PROJECT_DIR --frames 1,9,17.")
    if args.pair:
        chosen = []
        for text in args.pair:
            span = parse_pair(shot, text)
            if span not in chosen:
                chosen.append(span)
    else:
        chosen = spans

    # Plan every job before running any, so a bad option fails before work is done. With --all, a key
    # pair with no room for in-betweens is skipped with a note instead of stopping the batch.
    if not args.pair:
        crowded = [span for span in chosen if span.gap < 2]
        for span in crowded:
            print(f"skipped frames {span.start_frame}-{span.start_frame + span.gap}: the keys are adjacent, "
                  "so no in-between fits; insert frames between them first.", file=sys.stderr)
        chosen = [span for span in chosen if span.gap >= 2] or chosen  # all crowded: let the job say why
    jobs = [segment_job(project, span, count=args.count, spacing=args.spacing, times=times, engine=args.engine,
                        params=params, seed=args.seed, prompt=args.prompt) for span in chosen]
    if getattr(args, "preset", None) and "steps" not in params:  # the preset beats the segment's steps
        from ..engines.tooncrafter.presets import PRESETS

        for job in jobs:
            if job.engine_id == "tooncrafter":
                job.params["steps"] = PRESETS[args.preset]
    quiet = getattr(args, "quiet", False)
    engines = {}
    try:
        for job in jobs:
            if job.engine_id not in engines:
                engine = create_engine(job.engine_id)
                check_engine(engine)
                engines[job.engine_id] = engine
        for job in jobs:
            with TqdmProgress(quiet=quiet) as progress:
                result = run_job(job, engines[job.engine_id], progress)
            project.save()  # each finished take is kept even if a later job fails
            take = result.take
            assert take is not None
            count = len(take.frames)
            print(f"frames {job.start.frame}-{job.end.frame}: take {take.label} with {count} "
                  f"in-between{'' if count == 1 else 's'} (engine {job.engine_id}, seed {result.seed}) in "
                  f"{project.folder / 'takes' / take.id}")
    finally:
        for job in jobs:
            project.release_take_id(job.take_id or "")
        for engine in engines.values():
            engine.unload()
    print(f"{len(jobs)} take{'s' if len(jobs) != 1 else ''} saved in {project.project_file}.")
    return 0
