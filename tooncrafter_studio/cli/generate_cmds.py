"""`generate`: run in-betweening jobs on a project headlessly and store the results as takes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

from ..core.errors import InputError
from ..core.limits import MAX_SEEDS
from ..project.commands import check_seed
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
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="takes per pair, with seeds SEED, SEED+1, ... (default 1)")
    p.add_argument("--prompt", default=None, help="text prompt for engines that take one")
    p.add_argument("--task-id", default=None, metavar="ID",
                   help="farm task id (one --pair): a re-run of the task replaces or keeps its take, never adds "
                        "a second one")
    p.add_argument("--cluster", default=None, metavar="ray|ray:local|ray:auto|ray://HOST:PORT",
                   help="run the pairs as tasks on a Ray cluster: 'ray' is RAY_ADDRESS if set, else a private "
                        "local cluster; 'ray:auto' the one running here; 'ray://HOST:PORT' a remote one (Ray Client)")
    p.add_argument("--redo-rejected", action="store_true",
                   help="redraw only the rejected frames of each pair's active take (a new seed unless --seed); "
                        "the other frames are kept, and pairs with nothing rejected are skipped")
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
        except (ValueError, RecursionError):  # 5,000-digit numbers, absurd nesting
            raise InputError(f"--param {name.strip()}: the value is not a usable number or JSON value.") from None
    return params


def parse_times(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--times '{text}' should be numbers separated by commas, e.g. 0.25,0.5,0.75.") from None


def run_generate(args: argparse.Namespace) -> int:
    from ..engines.registry import engine_info
    from ..pipeline.jobs import TakeReservation, parse_pair, redo_rejected_job, segment_job
    from ..pipeline.runner import first_seed
    from ..pipeline.shared_project import (
        check_task_id,
        check_write_lock,
        clear_failed_attempt,
        commit_take,
        registered_take,
        task_take_id,
    )
    from ..project.resolve import key_spans
    from .project_cmds import open_for_editing

    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be at least 1, not {args.count}.")
    check_seed(args.seed)
    times = parse_times(args.times) if args.times is not None else None
    if times is not None and args.spacing is not None:
        raise InputError("--times and --spacing do not go together: explicit times already set the spacing.")
    if times is not None and args.count is not None and args.count != len(times):
        raise InputError(f"--count {args.count} does not match the {len(times)} --times given.")
    redo = getattr(args, "redo_rejected", False)
    if redo and (times is not None or args.count is not None or args.spacing is not None):
        raise InputError("--redo-rejected keeps the take's own frame times: it does not go with "
                         "--count, --spacing or --times.")
    params = parse_params(args.param)

    project = open_for_editing(args.project, "generate", shared=True)
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
        if args.count is None and times is None and args.spacing is None and not redo:
            from ..project.document import segment_settings

            unmarked = [span for span in chosen if segment_settings(shot, span.key).offsets == []]
            for span in unmarked:
                print(f"skipped frames {span.start_frame}-{span.start_frame + span.gap}: the timing sheet marks no "
                      "in-betweens there.", file=sys.stderr)
            chosen = [span for span in chosen if span not in unmarked] or chosen
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise InputError(f"--seeds must be from 1 to {MAX_SEEDS:,} (takes per pair in one run), not {args.seeds}.")
    task_id = check_task_id(args.task_id) if args.task_id is not None else None
    if task_id is not None and (len(chosen) != 1 or args.seeds != 1 or args.cluster):
        raise InputError("--task-id is for one farm task: give exactly one --pair, and no --seeds or --cluster.")
    if redo and (args.seeds != 1 or task_id is not None):
        raise InputError("--redo-rejected makes one take per pair: it does not go with --seeds or --task-id.")
    jobs = []
    try:
        if redo:
            jobs = _redo_jobs(project, chosen, args, params, redo_rejected_job)
        else:
            for span in chosen:
                first = segment_job(project, span, count=args.count, spacing=args.spacing, times=times,
                                    engine=args.engine, params=params, seed=args.seed, prompt=args.prompt)
                jobs.append(first)
                if args.seeds > 1:
                    if first.seed is None:
                        first.seed = first_seed(engine_info(first.engine_id).capabilities)
                    jobs += [segment_job(project, span, count=args.count, spacing=args.spacing, times=times,
                                         engine=args.engine, params=params, seed=first.seed + i, prompt=args.prompt)
                             for i in range(1, args.seeds)]
        if getattr(args, "preset", None) and "steps" not in params:  # the preset beats the segment's steps
            from ..engines.tooncrafter.presets import PRESETS

            for job in jobs:
                if job.engine_id == "tooncrafter":
                    job.params["steps"] = PRESETS[args.preset]
        if task_id is not None:
            job = jobs[0]
            job.release()
            job.reservation = TakeReservation(task_take_id(task_id), lambda _take_id: None, project.project_file)
            done = registered_take(project, task_id)
            if done is not None:
                print(f"task {task_id} already made take {done.label} ({project.folder / 'takes' / done.id}); "
                      "nothing to do.")
                return 0
            clear_failed_attempt(project.folder, job.take_id)
        check_write_lock(project.folder)  # a stuck or planted write lock is said now, not after the work
        quiet = getattr(args, "quiet", False)
        if args.cluster:
            from ..pipeline.cluster_ray import run_on_ray

            results = run_on_ray(jobs, args.cluster, progress_factory=lambda: TqdmProgress(quiet=quiet))
        else:
            results = _run_locally(jobs, quiet, redo)
        for result in results:
            take, _ = commit_take(result, task_id)  # each finished take is kept even if a later job fails
            _report(result, take, project.folder)
    finally:
        for job in jobs:
            job.release()
    print(f"{len(jobs)} take{'s' if len(jobs) != 1 else ''} saved in {project.project_file}.")
    return 0


def _run_locally(jobs: list, quiet: bool, redo: bool) -> Iterator:
    """Run the jobs one after another, engines kept between them; yields each result. Options and
    availability are checked for every job before any work is done."""
    from ..pipeline.engines import EngineCache
    from ..pipeline.runner import check_engine, run_job

    engines = EngineCache()
    try:
        for job in jobs:
            engine = engines.get(job.engine_id, job.params)
            check_engine(engine)
            if redo and not engine.capabilities.seed_variants:
                raise InputError(f"The {engine.label or engine.id} engine is deterministic: redrawing gives the "
                                 "same frames. Use an --engine whose result changes with the seed, or change the "
                                 "spacing or count and generate again.")
        for job in jobs:
            with TqdmProgress(quiet=quiet) as progress:
                yield run_job(job, engines.get(job.engine_id, job.params), progress)
    finally:
        engines.clear()


def _report(result, take, folder) -> None:
    job = result.job
    count = len(take.frames)
    if result.unchanged:
        print(f"note: {len(result.unchanged)} redrawn frame(s) of take {take.label} are identical to the "
              "rejected ones; try another --seed, --engine or spacing.", file=sys.stderr)
    print(f"frames {job.start.frame}-{job.end.frame}: take {take.label} with {count} "
          f"in-between{'' if count == 1 else 's'} (engine {job.engine_id}, seed {result.seed}) in "
          f"{folder / 'takes' / take.id}")


def _redo_jobs(project: Any, spans: list[Any], args: argparse.Namespace, params: dict[str, Any],
               redo_rejected_job: Any) -> list[Any]:
    """One redo-rejected job per pair whose active take has rejected frames; the others are noted."""
    from ..pipeline.runner import draw_seed
    from ..project.document import ReviewStatus

    shot = project.shot
    jobs = []
    for span in spans:
        segment = shot.segments.get(span.key)
        take = shot.takes.get(segment.active_take) if segment is not None and segment.active_take else None
        frames = f"frames {span.start_frame}-{span.start_frame + span.gap}"
        if take is None:
            print(f"skipped {frames}: no take yet (generate one first).", file=sys.stderr)
            continue
        if not any(tf.status == ReviewStatus.REJECTED for tf in take.frames):
            print(f"skipped {frames}: no frame of take {take.label} is rejected.", file=sys.stderr)
            continue
        seed = args.seed if args.seed is not None else draw_seed()
        jobs.append(redo_rejected_job(project, span, seed=seed, engine=args.engine, params=params))
    if not jobs:
        raise InputError("No rejected frames to redo: reject frames first, e.g. "
                         "tooncrafter-studio review PROJECT_DIR reject 5,7.")
    return jobs
