"""`farm export`: a batch of generations as a render-farm job (OpenJD, Deadline, OpenCue, Flamenco)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import InputError

FORMATS = ("openjd", "deadline", "opencue", "flamenco")
SUBMIT = {
    "openjd": "openjd run {out}/template.json -p file://{out}/job.params.json, or submit {out} as a "
              "Deadline Cloud job bundle (deadline bundle submit {out})",
    "deadline": "python {out}/submit_deadline.py (runs deadlinecommand with the three job files)",
    "opencue": "python {out}/submit_opencue.py [--dry-run] (with opencue-pyoutline installed)",
    "flamenco": "copy {out}/tooncrafter.js into the Flamenco Manager's scripts/ folder once (one job type "
                "for every batch), then python {out}/submit_flamenco.py --manager http://MANAGER:8080",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("farm", help="export generation batches as render-farm jobs")
    sub = p.add_subparsers(dest="farm_command", metavar="COMMAND", parser_class=type(p))
    e = sub.add_parser(
        "export", help="write a farm job: one generate task per key pair and seed",
        description="Write a farm job whose tasks each run `tooncrafter-studio generate` on one key pair "
                    "and seed of the project. The farm must see the project folder (a shared path); each "
                    "task adds its take to the project safely, and a re-run task never adds a second one.")
    e.add_argument("project", metavar="PROJECT_DIR")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--segments", nargs="+", metavar="A:B", help="key pairs by timeline frames, e.g. 1:9 9:17")
    which.add_argument("--all", action="store_true", help="every key pair with room for in-betweens")
    e.add_argument("--seeds", type=int, default=1, metavar="N", help="tasks (takes) per pair, seeds SEED.. (default 1)")
    e.add_argument("--seed", type=int, default=None, help="first seed (default: the segment's, or a fresh one)")
    e.add_argument("--engine", default=None, help="engine id (default: each segment's)")
    e.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="engine parameter; repeatable")
    e.add_argument("--format", choices=FORMATS, default="openjd", help="the farm's job format (default openjd)")
    e.add_argument("--executable", default=None, metavar="COMMAND",
                   help="how the farm's hosts start the CLI (default: tooncrafter-studio)")
    e.add_argument("--out", required=True, metavar="DIR", help="folder for the job files")
    farm = e.add_argument_group("what the job asks of the farm")
    farm.add_argument("--farm-project-dir", default=None, metavar="PATH",
                      help="the project folder as the farm's hosts see it (path mapping; default: the same path)")
    farm.add_argument("--priority", type=int, default=50, metavar="0-100", help="job priority (default 50)")
    farm.add_argument("--task-timeout", type=int, default=0, metavar="MINUTES",
                      help="fail a task that runs longer, so the farm retries it (default: no limit)")
    farm.add_argument("--pool", default=None, help="Deadline pool")
    farm.add_argument("--group", default=None, help="Deadline group (e.g. your GPU hosts)")
    farm.add_argument("--tag", default=None, help="OpenCue layer tag, or Flamenco worker tag UUID")
    farm.add_argument("--export-to", default=None, metavar="DIR",
                      help="add a last task that exports the shot to DIR (as the hosts see it) once every "
                           "in-betweening task has finished (pending frames included)")
    farm.add_argument("--host-os", choices=("linux", "windows"), default="linux",
                      help="OpenCue: quote commands for a shell (linux) or by Windows rules")
    e.set_defaults(handler=run_farm_export)
    p.set_defaults(handler=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_farm_export(args: argparse.Namespace) -> int:
    from ..pipeline.farm_formats import write_farm_job
    from ..pipeline.farm_plan import FarmRequest, make_plan
    from .generate_cmds import parse_params
    from .project_cmds import open_for_editing

    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise InputError(f"--seed must be a whole number from 0 to 2^63-1, not {args.seed}.")
    parse_params(args.param)  # a malformed --param fails here, not on every farm task
    if not 0 <= args.priority <= 100:
        raise InputError(f"--priority must be from 0 to 100, not {args.priority}.")
    if not 0 <= args.task_timeout <= 7 * 24 * 60:
        raise InputError(f"--task-timeout must be from 0 (none) to 10080 minutes, not {args.task_timeout}.")
    request = FarmRequest(project_dir=args.farm_project_dir, priority=args.priority,
                          timeout_minutes=args.task_timeout, pool=args.pool, group=args.group, tag=args.tag,
                          host_os=args.host_os, export_dir=args.export_to)
    project = open_for_editing(args.project)
    plan = make_plan(project, args.segments, args.seeds, args.seed, args.engine, args.param, args.executable,
                     request=request)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder.")
    files = write_farm_job(plan, args.format, out)
    for source in plan.outside_sources:
        print(f"warning: footage {source} lies outside the project folder; the farm's hosts must see it "
              "at that same path.", file=sys.stderr)
    print(f"{len(plan.tasks)} task{'s' if len(plan.tasks) != 1 else ''} (batch {plan.batch}) for "
          f"{project.folder}:")
    for path in files:
        print(f"  {path}")
    print(f"submit: {SUBMIT[args.format].format(out=out)}")
    return 0
