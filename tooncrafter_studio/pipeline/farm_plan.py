"""A batch of generations as farm tasks: one task per (key pair, seed), each a `generate` command.

The plan is what every farm format translates (farm_formats.py). A task's command line names the
project folder, one key pair by timeline frames, a seed and a task id; everything else comes from
the project's segment settings, read by the task when it runs. The project folder is what the farm
shares: sources inside it are referenced relative to it, so only the folder's own path has to be
mapped between the submitting machine and the workers.

Seeds are fixed when the plan is made (the segment's seed, --seed, or a fresh one), so a re-run of
a task after a failure makes the same frames, and its task id (batch, pair, seed) lets it find the
take an earlier attempt registered (shared_project.py).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..project.commands import segment_settings
from ..project.project import Project
from ..project.resolve import SegmentSpan, key_spans
from .jobs import parse_pair, plan_inbetweens
from .runner import first_seed

log = logging.getLogger(__name__)

DEFAULT_EXECUTABLE = ("tooncrafter-studio",)
MAX_TASKS = 100_000


@dataclass(frozen=True)
class FarmTask:
    pair: str  # "START:END" timeline frames of two neighbouring keys
    seed: int
    task_id: str

    @property
    def name(self) -> str:
        start, end = self.pair.split(":")
        return f"frames-{start}-{end}-seed-{self.seed}"


@dataclass
class FarmRequest:
    """What the batch asks of the farm, each scheduler in its own terms (see farm_formats.py)."""

    project_dir: str | None = None  # the project folder on the farm's hosts (None: the same path)
    priority: int = 50  # 0..100; OpenCue and Deadline scale it to their own ranges
    timeout_minutes: int = 0  # a task running longer is failed (and retried by the farm); 0: none
    pool: str | None = None  # Deadline pool
    group: str | None = None  # Deadline group (e.g. the GPU hosts)
    tag: str | None = None  # OpenCue layer tag / Flamenco worker tag id
    host_os: str = "linux"  # how OpenCue's command lines are quoted: a shell (linux) or Windows rules
    gpu_memory_gb: int = 12  # what a ToonCrafter task asks for besides the GPU itself
    memory_gb: int = 8
    export_dir: str | None = None  # a last task, after every other: `export` the shot there (farm's path)


@dataclass
class FarmPlan:
    name: str  # the shot's name: the job's name on the farm
    project_dir: str  # where the project is on the submitting machine (a path to map on the farm)
    batch: str  # a short id shared by the tasks of one export
    tasks: list[FarmTask]
    options: list[str] = field(default_factory=list)  # generate options every task gets (--engine...)
    executable: list[str] = field(default_factory=lambda: list(DEFAULT_EXECUTABLE))
    gpus_per_task: int = 0  # 1 when the engine needs a GPU
    outside_sources: list[str] = field(default_factory=list)  # footage the farm must see at its own path
    farm: FarmRequest = field(default_factory=lambda: FarmRequest())

    @property
    def farm_project_dir(self) -> str:
        """The project folder as the farm's hosts see it (path mapping done at export)."""
        return self.farm.project_dir or self.project_dir

    def arguments(self, task: FarmTask, project_dir: str | None = None) -> list[str]:
        """The generate arguments of one task (without the executable), on the farm's hosts."""
        return ["generate", project_dir or self.farm_project_dir, "--pair", task.pair, "--seed", str(task.seed),
                "--task-id", task.task_id, "--quiet", *self.options]

    def export_arguments(self, project_dir: str | None = None, export_dir: str | None = None) -> list[str]:
        """The last task's `export` arguments: every take so far, reviewed or not (the farm's takes are)."""
        return ["export", project_dir or self.farm_project_dir, "--out", export_dir or str(self.farm.export_dir),
                "--include-pending", "--overwrite"]

    def export_command(self, project_dir: str | None = None, export_dir: str | None = None) -> list[str]:
        return [*self.executable, *self.export_arguments(project_dir, export_dir)]

    def command(self, task: FarmTask, project_dir: str | None = None) -> list[str]:
        return [*self.executable, *self.arguments(task, project_dir)]



def _pair_text(span: SegmentSpan) -> str:
    return f"{span.start_frame}:{span.start_frame + span.gap}"


def make_plan(project: Project, pairs: list[str] | None = None, seeds: int = 1, seed: int | None = None,
              engine: str | None = None, params: list[str] | None = None, executable: str | None = None,
              batch: str | None = None, request: FarmRequest | None = None) -> FarmPlan:
    """Plan `seeds` tasks per key pair (`pairs` like "1:9", or every pair with room for in-betweens).

    Every chosen segment is planned now, so a pair that cannot be generated fails here, not on the farm.
    """
    from ..engines.registry import engine_info

    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, not {seeds}.")
    shot = project.shot
    spans = key_spans(shot)
    if not spans:
        raise InputError(f"{project.folder} has fewer than two keys; mark them first, e.g. "
                         "tooncrafter-studio keys PROJECT_DIR --frames 1,9,17.")
    if pairs:
        chosen: list[SegmentSpan] = []
        for text in pairs:
            span = parse_pair(shot, text)
            if span not in chosen:
                chosen.append(span)
    else:
        chosen = [span for span in spans if span.gap >= 2]
        if not chosen:
            raise InputError("Every key pair is adjacent: no in-between fits anywhere; insert frames first.")
    if len(chosen) * seeds > MAX_TASKS:
        raise InputError(f"{len(chosen) * seeds} tasks is more than one job should hold ({MAX_TASKS}).")
    engines = set()
    tasks = []
    batch = batch or os.urandom(3).hex()
    for span in chosen:
        settings = segment_settings(shot, span.key)
        plan_inbetweens(span.gap, settings)  # raises a clear error for a segment that cannot be made
        engines.add(engine or settings.engine or "flow")
        base = (seed if seed is not None else settings.seed if settings.seed is not None
                else first_seed(engine_info(engine or settings.engine or "flow").capabilities))
        for i in range(seeds):
            pair = _pair_text(span)
            tasks.append(FarmTask(pair, base + i, f"{batch}-{pair}-s{base + i}"))
    options: list[str] = []
    if engine:
        options += ["--engine", engine]
    for item in params or []:
        options += ["--param", item]
    gpus = 0
    for engine_id in sorted(engines):
        if engine_info(engine_id).capabilities.needs_gpu:
            gpus = 1
    outside = [source.path for source in shot.sources.values() if Path(source.path).is_absolute()]
    return FarmPlan(name=shot.name or project.folder.name, project_dir=str(project.folder), batch=batch,
                    tasks=tasks, options=options, executable=split_executable(executable) if executable
                    else list(DEFAULT_EXECUTABLE), gpus_per_task=gpus, outside_sources=outside,
                    farm=request or FarmRequest())


_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_PROGRAM_SUFFIXES = (".exe", ".com", ".bat", ".cmd", ".py", ".pyw", ".sh")


def split_executable(text: str) -> list[str]:
    """--executable as words: POSIX shell rules, or Windows rules for a Windows path.

    A Windows path keeps its backslashes (shlex would eat them: C:\\Program Files -> C:Program);
    one with a space must be in double quotes, as on a Windows command line, else it is refused
    rather than split at the space.
    """
    text = text.strip()
    if not text:
        raise InputError("--executable is empty; give how the farm's hosts start the CLI.")
    if Path(text).is_file():  # a program named whole, spaces and all
        return [text]
    if "\\" not in text and not _WINDOWS_ABSOLUTE.match(text):
        try:
            return shlex.split(text)
        except ValueError as exc:
            raise InputError(f"--executable {text!r}: {exc}.") from None
    words = split_windows_command_line(text)
    first = words[0]
    if len(words) > 1 and not text.startswith('"') and not first.lower().endswith(_PROGRAM_SUFFIXES):
        raise InputError(f"--executable '{text}' is a Windows path with a space: put the program in double "
                         f"quotes, e.g. --executable '\"{first} {words[1]}...\"' (as on a Windows command line).")
    return words


def split_windows_command_line(text: str) -> list[str]:
    """Words of a Windows command line (the CommandLineToArgvW rules Deadline's and Windows' programs use)."""
    words: list[str] = []
    current: list[str] = []
    in_word = quoted = False
    slashes = 0
    for char in text:
        if char == "\\":
            slashes += 1
            in_word = True
            continue
        if char == '"':
            current.append("\\" * (slashes // 2))
            if slashes % 2:
                current.append('"')
            else:
                quoted = not quoted
            slashes = 0
            in_word = True
            continue
        current.append("\\" * slashes)
        slashes = 0
        if char in " \t" and not quoted:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            continue
        current.append(char)
        in_word = True
    current.append("\\" * slashes)
    if in_word:
        words.append("".join(current))
    return words


def windows_argument(arg: str) -> str:
    """One argument quoted so that split_windows_command_line (and Windows programs) read it back."""
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


def windows_command_line(args: list[str]) -> str:
    return " ".join(windows_argument(arg) for arg in args)


def plan_summary(plan: FarmPlan) -> dict[str, Any]:
    return {"name": plan.name, "project_dir": plan.project_dir, "batch": plan.batch, "tasks": len(plan.tasks),
            "gpus_per_task": plan.gpus_per_task}
