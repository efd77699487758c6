"""`tooncrafter-studio engine install|status`: the ToonCrafter engine's private torch environment.

    engine install [--backend auto|cuda|cpu|mps|cu126|cu128|cu130] [--dry-run] [--tool uv|pip]
                   detect the GPU, pick the torch build, install it into the user data folder
    engine status [--json]   where the environment is and what it holds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.progress import ProgressEvent
from ..setup.engine_env import engine_env_dir, marker_state, ready_env
from ..setup.engine_install import BACKENDS, CUDA_BUILDS, plan_install, run_install


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("engine", help="install the ToonCrafter engine's torch environment",
                              description="The ToonCrafter engine runs in a private Python environment "
                                          "with the torch build that fits this machine's GPU.")
    sub = p.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    install = sub.add_parser("install", help="detect the GPU and install the matching torch build",
                             description="Detect the platform and GPU, choose the torch build (CUDA version from "
                                         "the NVIDIA driver, MPS on macOS, else CPU) and install it with the "
                                         "engine's pinned packages into a private environment. Safe to run "
                                         "again: a finished install is left alone, a broken one is completed.")
    install.add_argument("--backend", default="auto", choices=BACKENDS + tuple(b.variant for b in CUDA_BUILDS),
                         help="auto (default) or a choice of your own")
    install.add_argument("--dry-run", action="store_true", help="print the plan and the exact commands, do nothing")
    install.add_argument("--tool", choices=("uv", "pip"), default=None, help="installer (default uv when present)")
    install.add_argument("--env", metavar="FOLDER", default=None,
                         help=f"where to create the environment (default {engine_env_dir()})")
    install.set_defaults(handler=run_install_cmd)
    status = sub.add_parser("status", help="show the engine environment")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=run_status)


def run_install_cmd(args: argparse.Namespace) -> int:
    plan = plan_install(args.backend, env_dir=Path(args.env) if args.env else None, tool=args.tool)
    print(plan.describe())
    if args.dry_run:
        return 0
    seen: set[str] = set()

    def progress(event: ProgressEvent) -> None:  # one line per step and per download (with its size)
        if not args.quiet and event.message and event.message not in seen:
            seen.add(event.message)
            print(f"  [{event.done}/{event.total}] {event.message}", flush=True)

    env = run_install(plan, progress)
    print(f"The ToonCrafter engine environment is ready: {env.description}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    folder = engine_env_dir()
    marker, damage = marker_state(folder)
    env = ready_env(folder) if marker is not None else None
    marker = marker or {}
    if args.json:
        print(json.dumps({**marker, "path": str(folder), "ready": env is not None, "exists": folder.exists(),
                          "damaged": damage}))
        return 0
    if env is None:
        state = ("damaged: " + damage + " (run `engine install` again)" if damage else
                 "half-installed (run `engine install` again)" if folder.exists() else "not installed")
        print(f"engine environment: {state} ({folder})")
        return 0
    verified = marker.get("verified", {})
    print(f"engine environment: ready, {env.description}")
    if verified:
        print(f"  torch {verified.get('torch')}, CUDA device {'yes' if verified.get('cuda_available') else 'no'}, "
              f"MPS {'yes' if verified.get('mps_available') else 'no'}")
    return 0
