"""Farm job files for a FarmPlan: Open Job Description first, then thin translations of it.

Every file follows farm_text.py's rule: user text is data (JSON, checked key=value lines), never
code; the scripts we ship are the same for every export (tooncrafter_studio/resources/farm/).

  openjd    template.json, parameter_values.json   an Open Job Description template (validated with
            job.params.json                         openjd-model) and its values: together a Deadline
                               Cloud job bundle; job.params.json is the same values for
                               `openjd run template.json -p file://job.params.json`. One step, one task
                               per (Pair, Seed); the project folder is a PATH parameter the farm maps.
  deadline  job_info.job, plugin_info.job, commands.txt, submit_deadline.py   Deadline's CommandScript
                               plugin: one command line per task, quoted by Windows rules as the plugin
                               starts processes; submit_deadline.py runs deadlinecommand.
  opencue   submit_opencue.py, opencue_job.json   PyOutline: one Shell layer per task, its GPUs,
                               memory, timeout and tags; `--dry-run` prints the spec cuebot would get.
  flamenco  tooncrafter.js, submit_flamenco.py, flamenco_job.json   one reusable Flamenco 3 job type;
                               a job's settings carry the project, batch and tasks; the submitter
                               POSTs them to the Manager's REST API.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..core.errors import ExportError, InputError
from ..core.fsio import atomic_write_text
from ..core.paths import resources_dir
from .farm_plan import FarmPlan, windows_command_line
from .farm_text import check_farm_text, json_data, key_value_text

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
    if plan.farm.timeout_minutes:
        step["script"]["actions"]["onRun"]["timeout"] = plan.farm.timeout_minutes * 60
    if plan.gpus_per_task:
        step["hostRequirements"] = {"amounts": [
            {"name": "amount.worker.gpu", "min": plan.gpus_per_task},
            {"name": "amount.worker.gpu.memory", "min": plan.farm.gpu_memory_gb * 1024}]}
    project = {"name": "ProjectDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "INOUT",
               "description": "The ToonCrafter Studio project folder, as the workers see it."}
    if out is not None and plan.farm.project_dir is None:  # OpenJD joins a default to the template's folder and never walks up from it
        try:
            relative = Path(os.path.relpath(plan.project_dir, Path(out).resolve())).as_posix()
        except ValueError:  # another drive (Windows)
            relative = ".."
        if relative != ".." and not relative.startswith("../"):
            project["default"] = relative
    parameters, steps = [project], [step]
    if plan.farm.export_dir:  # the Export step runs once every in-betweening task is done
        parameters.append({"name": "ExportDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT",
                           "description": "Where the finished shot is exported, as the workers see it."})
        export_args = [*plan.executable[1:], *plan.export_arguments("{{Param.ProjectDir}}", "{{Param.ExportDir}}")]
        steps.append({"name": "Export", "dependencies": [{"dependsOn": "Inbetween"}],
                      "script": {"actions": {"onRun": {"command": plan.executable[0], "args": export_args}}}})
    return {"specificationVersion": OPENJD_VERSION, "name": _job_name(plan),
            "parameterDefinitions": parameters, "steps": steps}


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
    # a Deadline Cloud job bundle names its files template.* and parameter_values.*
    path = out / "template.json"
    atomic_write_text(path, json_data(template), error=ExportError)
    bundle_values = out / "parameter_values.json"
    given = {"ProjectDir": plan.farm_project_dir}
    if plan.farm.export_dir:
        given["ExportDir"] = plan.farm.export_dir
    atomic_write_text(bundle_values, json_data({"parameterValues": [
        {"name": name, "value": value} for name, value in given.items()]}), error=ExportError)
    # the same values as `openjd run template.json -p file://job.params.json` reads them
    values = out / "job.params.json"
    atomic_write_text(values, json_data(given), error=ExportError)
    return [path, bundle_values, values]


# -------------------------------------------------------------------- Deadline


def deadline_priority(priority: int) -> int:
    return max(0, min(100, priority))  # Deadline's default maximum priority is 100


def write_deadline(plan: FarmPlan, out: Path) -> list[Path]:
    # CommandScript starts each line's program with the rest of the line as its argument string, which
    # programs split by Windows rules (.NET does the same on Linux): never POSIX quoting here
    commands = [windows_command_line(plan.command(task)) for task in plan.tasks]
    request = plan.farm
    job_info: dict[str, object] = {
        "Plugin": "CommandScript",
        "Name": _job_name(plan),
        "Comment": f"{len(commands)} in-betweening tasks for {plan.farm_project_dir}",
        "BatchName": f"ToonCrafter {plan.name}",
        "Frames": f"0-{len(commands) - 1}",
        "ChunkSize": 1,
        "Priority": deadline_priority(request.priority),
        "ExtraInfoKeyValue0": f"ToonCrafterBatch={plan.batch}",
    }
    if request.timeout_minutes:
        job_info["TaskTimeoutMinutes"] = request.timeout_minutes
        job_info["OnTaskTimeout"] = "Error"  # an error the job's retries then handle
    if request.pool:
        job_info["Pool"] = request.pool
    if request.group:
        job_info["Group"] = request.group
    if plan.gpus_per_task:
        job_info["ExtraInfoKeyValue1"] = f"GpusPerTask={plan.gpus_per_task}"
        job_info["ConcurrentTasks"] = 1  # one in-betweening task per Worker: one model on its GPU
    plugin_info = {"StartupDirectory": plan.farm_project_dir}
    files = {"job_info.job": key_value_text(job_info), "plugin_info.job": key_value_text(plugin_info),
             "commands.txt": "".join(f"{line}\n" for line in commands)}
    if plan.farm.export_dir:  # a second job that depends on the first (submit_deadline.py submits both)
        export_info = {"Plugin": "CommandScript", "Name": f"{_job_name(plan)} export",
                       "BatchName": job_info["BatchName"], "Frames": "0", "ChunkSize": 1,
                       "Priority": job_info["Priority"]}
        for key in ("Pool", "Group"):
            if key in job_info:
                export_info[key] = job_info[key]
        files["export_job_info.job"] = key_value_text(export_info)
        files["export_plugin_info.job"] = key_value_text(plugin_info)
        files["export_commands.txt"] = windows_command_line(plan.export_command()) + "\n"
    for name, text in files.items():
        atomic_write_text(out / name, text, error=ExportError)
    return [*(out / name for name in files), _copy_script(out, "submit_deadline.py")]


# -------------------------------------------------------------------- OpenCue


def opencue_job(plan: FarmPlan) -> dict:
    request = plan.farm
    tasks = [{"layer": f"t{i:05d}_{task.pair.replace(':', '_')}_s{task.seed}",
              "command": plan.command(task, PROJECT_PLACEHOLDER)} for i, task in enumerate(plan.tasks)]
    return {"job_name": _safe_name(f"tooncrafter_{plan.name}_{plan.batch}"), "shot": _safe_name(plan.name),
            "project_dir": plan.farm_project_dir, "placeholder": PROJECT_PLACEHOLDER,
            "host_os": request.host_os, "priority": max(1, request.priority), "retries": 3,
            "gpus": plan.gpus_per_task, "gpu_memory": f"{request.gpu_memory_gb}g",
            "memory": f"{request.memory_gb}g", "timeout_minutes": request.timeout_minutes,
            "tags": request.tag, "tasks": tasks,
            "export": {"layer": "export", "command": plan.export_command(PROJECT_PLACEHOLDER)}
            if request.export_dir else None}


def write_opencue(plan: FarmPlan, out: Path) -> list[Path]:
    data = out / "opencue_job.json"
    atomic_write_text(data, json_data(opencue_job(plan)), error=ExportError)
    return [_copy_script(out, "submit_opencue.py"), data]


# -------------------------------------------------------------------- Flamenco

FLAMENCO_JOB_TYPE = "tooncrafter"  # the job type's name is its script's file name


def flamenco_job(plan: FarmPlan) -> dict:
    tasks = [{"name": task.name, "pair": task.pair, "seed": task.seed, "task_id": task.task_id}
             for task in plan.tasks]
    settings = {"project_dir": plan.farm_project_dir, "batch": plan.batch, "executable": plan.executable[0],
                "executable_args": json.dumps(plan.executable[1:]), "tasks": json.dumps(tasks),
                "options": json.dumps(plan.options), "export_dir": plan.farm.export_dir or ""}
    job = {"name": _job_name(plan), "type": FLAMENCO_JOB_TYPE, "priority": max(0, min(100, plan.farm.priority)),
           "settings": settings}
    if plan.farm.tag:
        job["worker_tag"] = plan.farm.tag
    return job


def write_flamenco(plan: FarmPlan, out: Path) -> list[Path]:
    data = out / "flamenco_job.json"
    atomic_write_text(data, json_data(flamenco_job(plan)), error=ExportError)
    return [_copy_script(out, f"{FLAMENCO_JOB_TYPE}.js"), _copy_script(out, "submit_flamenco.py"), data]


# -------------------------------------------------------------------- shared


def _safe_name(text: str) -> str:
    """A scheduler's object name (OpenCue jobs and layers allow letters, digits, _ . -)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "shot"


def _copy_script(out: Path, name: str) -> Path:
    """One of our fixed scripts, copied as it is: it holds no user text (farm_text.py)."""
    text = (resources_dir() / "farm" / name).read_text(encoding="utf-8")
    atomic_write_text(out / name, text, error=ExportError)
    return out / name


def check_plan(plan: FarmPlan) -> None:
    """Refuse, before anything is written, a plan holding text that no farm file can carry."""
    fields = [("The project folder", plan.project_dir), ("The project folder on the farm", plan.farm_project_dir),
              ("The shot name", plan.name), ("The batch id", plan.batch)]
    fields += [("--executable", word) for word in plan.executable]
    fields += [("A generate option", word) for word in plan.options]
    fields += [(name, value) for name, value in (("--pool", plan.farm.pool), ("--group", plan.farm.group),
                                                 ("--tag", plan.farm.tag)) if value]
    if plan.farm.export_dir:
        fields.append(("The export folder", plan.farm.export_dir))
    check_farm_text(fields)
    if not plan.executable or not plan.executable[0]:
        raise InputError("--executable is empty; give how the farm's hosts start the CLI.")


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
    check_plan(plan)  # before anything is written
    return FORMATS[fmt](plan, out)
