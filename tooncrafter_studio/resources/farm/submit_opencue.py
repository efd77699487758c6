"""Submit a ToonCrafter Studio batch to OpenCue (written by `tooncrafter-studio farm export --format opencue`).

This file is the same for every export: the batch is opencue_job.json beside it, read as data.

    python submit_opencue.py [--project-dir PATH] [--show SHOW] [--host-os linux|windows] [--dry-run]

--project-dir  the project folder as the render hosts see it (default: the submitting machine's path)
--dry-run      print the job spec that cuebot would receive (PyOutline's own serializer) and send nothing

Each task is one Shell layer of one frame that runs its `generate` command; the layer asks for the
GPUs, memory and timeout written in the JSON. Needs the OpenCue client (pip install opencue-pyoutline).
"""

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

DATA = Path(__file__).resolve().with_name("opencue_job.json")


def windows_argument(arg):
    """One argument as Windows programs split their command line (CommandLineToArgvW rules)."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    out, slashes = ['"'], 0
    for char in arg:
        if char == "\\":
            slashes += 1
            continue
        out.append("\\" * (slashes * 2 + 1) + '"' if char == '"' else "\\" * slashes + char)
        slashes = 0
    out.append("\\" * (slashes * 2) + '"')
    return "".join(out)


def command_text(args, host_os):
    if host_os == "windows":
        return " ".join(windows_argument(arg) for arg in args)
    return shlex.join(args)  # RQD runs a Linux or macOS frame's command through a shell


def build_outline(job, project_dir, show, host_os):
    from outline import Outline
    from outline.modules.shell import Shell

    outline = Outline(job["job_name"], show=show, shot=job["shot"])
    layers = []
    for task in job["tasks"]:
        args = [project_dir if arg == job["placeholder"] else arg for arg in task["command"]]
        layer = {"command": command_text(args, host_os), "range": "1", "chunk": 1,
                 "memory": job["memory"], "timeout": job["timeout_minutes"]}
        if job["gpus"]:
            layer.update(gpus=job["gpus"], gpu_memory=job["gpu_memory"])
        if job["tags"]:
            layer["tags"] = job["tags"]
        layers.append(Shell(task["layer"], **layer))
        outline.add_layer(layers[-1])
    if job.get("export"):  # export the shot once every in-betweening layer has finished
        args = [project_dir if arg == job["placeholder"] else arg for arg in job["export"]["command"]]
        export = Shell(job["export"]["layer"], command=command_text(args, host_os), range="1", chunk=1)
        for layer in layers:
            export.depend_all(layer)
        outline.add_layer(export)
    return outline


def main(argv=None):
    job = json.loads(DATA.read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", default=job["project_dir"])
    parser.add_argument("--show", default=None, help="the OpenCue show (default: $SHOW)")
    parser.add_argument("--host-os", choices=("linux", "windows"), default=job["host_os"])
    parser.add_argument("--dry-run", action="store_true", help="print the job spec, send nothing")
    args = parser.parse_args(argv)
    try:
        from outline import cuerun
    except ImportError:
        print("error: the OpenCue client is not installed: pip install opencue-pyoutline", file=sys.stderr)
        return 3
    outline = build_outline(job, args.project_dir, args.show, args.host_os)
    launcher = cuerun.OutlineLauncher(outline, priority=job["priority"], maxretries=job["retries"])
    if args.dry_run:
        print(launcher.serialize(use_pycuerun=False))
        return 0
    jobs = launcher.launch(use_pycuerun=False)
    print(f"submitted {len(job['tasks'])} tasks: {', '.join(j.name() for j in jobs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
