"""Farm job files for a FarmPlan: Open Job Description first, then thin translations of it.

  openjd    job.template.json  an OpenJD job template (validated with openjd-model when installed):
                               one step, one task per (Pair, Seed), the project folder a PATH
                               parameter the farm maps; job.params.json holds its value here: run
                               locally with `openjd run job.template.json -p file://job.params.json`.
  deadline  job_info.job, plugin_info.job, commands.txt   Deadline's CommandScript plugin: one
                               command per line, one line per task (`deadlinecommand job_info.job
                               plugin_info.job commands.txt`).
  opencue   submit_opencue.py  a PyOutline script: a ShellSequence layer, one frame per command.
  flamenco  tooncrafter.js     a Flamenco 3 job type: one task per command, an `exec` command each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..core.errors import ExportError, InputError
from ..core.fsio import atomic_write_text
from .farm_plan import FarmPlan

OPENJD_VERSION = "jobtemplate-2023-09"
PROJECT_PLACEHOLDER = "<PROJECT_DIR>"  # replaced by the path the farm's hosts see


def _job_name(plan: FarmPlan) -> str:
    return f"ToonCrafter {plan.name} ({plan.batch})"


# -------------------------------------------------------------------- Open Job Description


def openjd_template(plan: FarmPlan, out: Path | None = None) -> dict:
    """The template; the project folder's default is relative to `out`, as OpenJD wants defaults."""
    pairs = [task.pair for task in plan.tasks]
    seeds = [task.seed for task in plan.tasks]
    task_id = f"{plan.batch}-{{{{Task.Param.Pair}}}}-s{{{{Task.Param.Seed}}}}"
    args = [*plan.executable[1:], "generate", "{{Param.ProjectDir}}", "--pair", "{{Task.Param.Pair}}",
            "--seed", "{{Task.Param.Seed}}", "--task-id", task_id, "--quiet", *plan.options]
    step: dict = {
        "name": "Inbetween",
        "parameterSpace": {
            "taskParameterDefinitions": [
                {"name": "Pair", "type": "STRING", "range": pairs},
                {"name": "Seed", "type": "INT", "range": seeds},
            ],
            "combination": "(Pair, Seed)",  # pair i goes with seed i, not every pair with every seed
        },
        "script": {"actions": {"onRun": {"command": plan.executable[0], "args": args}}},
    }
    if plan.gpus_per_task:
        step["hostRequirements"] = {"amounts": [{"name": "amount.worker.gpu", "min": plan.gpus_per_task}]}
    project = {"name": "ProjectDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "INOUT",
               "description": "The ToonCrafter Studio project folder, as the workers see it."}
    if out is not None:  # OpenJD joins a default to the template's folder and never walks up from it
        try:
            relative = Path(os.path.relpath(plan.project_dir, Path(out).resolve())).as_posix()
        except ValueError:  # another drive (Windows)
            relative = ".."
        if relative != ".." and not relative.startswith("../"):
            project["default"] = relative
    return {"specificationVersion": OPENJD_VERSION, "name": _job_name(plan),
            "parameterDefinitions": [project], "steps": [step]}


def validate_openjd(template: dict) -> bool:
    """Check a template with openjd-model; False when openjd-model is not installed."""
    try:
        from openjd.model import decode_job_template
    except ImportError:
        return False
    try:
        decode_job_template(template=template)
    except Exception as exc:  # openjd raises DecodeValidationError with the reasons
        raise ExportError(f"The Open Job Description template is not valid: {exc}") from None
    return True


def write_openjd(plan: FarmPlan, out: Path) -> list[Path]:
    template = openjd_template(plan, out)
    validate_openjd(template)
    path = out / "job.template.json"
    atomic_write_text(path, json.dumps(template, indent=2) + "\n", error=ExportError)
    # the submitting machine's value: `openjd run job.template.json -p file://job.params.json`
    values = out / "job.params.json"
    atomic_write_text(values, json.dumps({"ProjectDir": plan.project_dir}, indent=2) + "\n", error=ExportError)
    return [path, values]


# -------------------------------------------------------------------- Deadline


def _key_values(entries: dict[str, object]) -> str:
    for key, value in entries.items():
        if "\n" in str(value) or "=" in key:
            raise InputError(f"Deadline job files cannot hold {key}={value!r}.")
    return "".join(f"{key}={value}\n" for key, value in entries.items())


def write_deadline(plan: FarmPlan, out: Path) -> list[Path]:
    commands = [plan.shell_command(task) for task in plan.tasks]
    job_info = {
        "Plugin": "CommandScript",
        "Name": _job_name(plan),
        "Comment": f"{len(commands)} in-betweening tasks for {plan.project_dir}",
        "Frames": f"0-{len(commands) - 1}",
        "ChunkSize": 1,
    }
    if plan.gpus_per_task:
        job_info["ExtraInfoKeyValue0"] = f"GpusPerTask={plan.gpus_per_task}"
    plugin_info = {"StartupDirectory": plan.project_dir}
    files = {"job_info.job": _key_values(job_info), "plugin_info.job": _key_values(plugin_info),
             "commands.txt": "".join(f"{line}\n" for line in commands)}
    for name, text in files.items():
        atomic_write_text(out / name, text, error=ExportError)
    return [out / name for name in files]


# -------------------------------------------------------------------- OpenCue


def write_opencue(plan: FarmPlan, out: Path) -> list[Path]:
    commands = [plan.command(task, PROJECT_PLACEHOLDER) for task in plan.tasks]
    layer = f"inbetween_{plan.batch}"
    text = f'''"""Submit the in-betweening batch of {plan.name} to OpenCue (PyOutline).

Run with the OpenCue client installed: python {out.name}/submit_opencue.py
Each command is one frame of the layer; the project folder must be mounted on the render hosts
at {plan.project_dir} (or edit PROJECT_DIR).
"""

from outline import Outline, cuerun
from outline.modules.shell import ShellSequence

PROJECT_DIR = {plan.project_dir!r}
COMMANDS = {json.dumps(commands, indent=4)}


def main():
    commands = [[PROJECT_DIR if arg == {PROJECT_PLACEHOLDER!r} else arg for arg in command] for command in COMMANDS]
    outline = Outline({_job_name(plan).replace(" ", "_").replace("(", "").replace(")", "")!r})
    outline.add_layer(ShellSequence({layer!r}, commands=commands))
    cuerun.launch(outline, use_pycuerun=False)


if __name__ == "__main__":
    main()
'''
    path = out / "submit_opencue.py"
    atomic_write_text(path, text, error=ExportError)
    return [path]


# -------------------------------------------------------------------- Flamenco


def write_flamenco(plan: FarmPlan, out: Path) -> list[Path]:
    tasks = [{"name": task.name, "args": plan.arguments(task, PROJECT_PLACEHOLDER)} for task in plan.tasks]
    text = f'''// Flamenco 3 job type: the in-betweening batch of {plan.name}.
// Put this file in the Manager's scripts/ folder, restart it, and submit a job of this type
// (e.g. from the Manager's API); project_dir is the project folder as the Workers see it.

const JOB_TYPE = {{
    label: {json.dumps(_job_name(plan))},
    settings: [
        {{ key: "project_dir", type: "string", subtype: "dir_path", required: true,
           default: {json.dumps(plan.project_dir)},
           description: "The ToonCrafter Studio project folder" }},
        {{ key: "executable", type: "string", required: true, default: {json.dumps(plan.executable[0])} }},
    ]
}};

const EXECUTABLE_ARGS = {json.dumps(plan.executable[1:])};
const TASKS = {json.dumps(tasks, indent=4)};

function compileJob(job) {{
    const settings = job.settings;
    for (const planned of TASKS) {{
        const task = author.Task(planned.name, "misc");
        const args = planned.args.map((arg) => arg === {json.dumps(PROJECT_PLACEHOLDER)} ? settings.project_dir : arg);
        task.addCommand(author.Command("exec", {{
            exe: settings.executable,
            args: EXECUTABLE_ARGS.concat(args),
        }}));
        job.addTask(task);
    }}
}}
'''
    path = out / "tooncrafter.js"
    atomic_write_text(path, text, error=ExportError)
    return [path]


FORMATS: dict[str, Callable[[FarmPlan, Path], list[Path]]] = {
    "openjd": write_openjd,
    "deadline": write_deadline,
    "opencue": write_opencue,
    "flamenco": write_flamenco,
}


def write_farm_job(plan: FarmPlan, fmt: str, out: Path) -> list[Path]:
    if fmt not in FORMATS:
        raise InputError(f"Unknown farm format '{fmt}'. Use one of: {', '.join(FORMATS)}.")
    if not plan.tasks:
        raise InputError("The batch has no tasks.")
    return FORMATS[fmt](plan, out)
