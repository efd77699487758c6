"""`farm export`: an OpenJD job run with `openjd run` fills the project exactly as `generate --all`;
the Deadline, OpenCue and Flamenco files carry the same plan (parsed back)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pipeline_factories import make_project
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.media.imageio import read_image
from tooncrafter_studio.pipeline.farm_plan import make_plan
from tooncrafter_studio.project.project import Project

ROOT = Path(__file__).resolve().parents[2]
KEYS = (1, 5, 9, 13, 17, 21, 25)  # six segments
EXECUTABLE = f"{shlex.quote(sys.executable)} -m tooncrafter_studio"
OPENJD = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))


def _cli(capsys, *argv) -> str:
    code = run_cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def takes_by_segment(folder: Path) -> dict:
    """segment -> [(seed, label, pixels of each frame)] in take order."""
    shot = Project.open(folder).shot
    found = {}
    for key, segment in shot.segments.items():
        found[key] = [(shot.takes[t].seed, shot.takes[t].label,
                       [read_image(folder / f.file) for f in shot.takes[t].frames]) for t in segment.take_ids]
    return found


def assert_same_takes(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert [(seed, label) for seed, label, _ in a[key]] == [(seed, label) for seed, label, _ in b[key]]
        for (_, _, frames_a), (_, _, frames_b) in zip(a[key], b[key]):
            assert len(frames_a) == len(frames_b) >= 1
            for x, y in zip(frames_a, frames_b):
                np.testing.assert_array_equal(x, y)


def _openjd_start(*argv) -> subprocess.Popen:
    return subprocess.Popen([OPENJD, "run", *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _openjd(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([OPENJD, "run", *map(str, argv)], capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_openjd_job_run_locally_fills_the_project_like_generate_all(tmp_path, capsys):
    pytest.importorskip("openjd.model")
    if not Path(OPENJD).exists():
        pytest.skip("openjd-cli is not installed")
    local = make_project(tmp_path / "local", keys=KEYS, count=25)
    farm = make_project(tmp_path / "farm", keys=KEYS, count=25)
    _cli(capsys, "generate", local.folder, "--all", "--seed", "7", "--engine", "flow", "-q")

    out = _cli(capsys, "farm", "export", farm.folder, "--all", "--seed", "7", "--engine", "flow",
               "--format", "openjd", "--executable", EXECUTABLE, "--out", tmp_path / "job")
    assert "6 tasks" in out
    template = tmp_path / "job" / "template.json"
    params = f"file://{tmp_path / 'job' / 'job.params.json'}"
    # two hosts take three tasks each, at the same time, on the one shared project
    spans = [(1, 5), (5, 9), (9, 13), (13, 17), (17, 21), (21, 25)]
    halves = [json.dumps([{"Pair": f"{a}:{b}", "Seed": 7} for a, b in spans[i::2]]) for i in (0, 1)]
    hosts = [_openjd_start(template, "-p", params, "--tasks", half) for half in halves]
    for host in hosts:
        out, err = host.communicate(timeout=PROCESS_CEILING_S)
        assert host.returncode == 0, out[-3000:] + err[-3000:]
        assert out.count("take T1 with 1 in-between") == 3
    expected = takes_by_segment(local.folder)
    assert len(expected) == 6 and all(len(t) == 1 for t in expected.values())
    assert_same_takes(takes_by_segment(farm.folder), expected)

    # the farm re-runs one task (a retry after a lost host): still one take for it
    rerun = _openjd(template, "-p", params, "--task-param", "Pair=9:13", "--task-param", "Seed=7")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "already made take T1" in rerun.stdout
    assert_same_takes(takes_by_segment(farm.folder), expected)


def test_plan_seeds_and_pairs(tmp_path):
    project = make_project(tmp_path, keys=KEYS, count=25)
    plan = make_plan(project, ["1:5", "9:13", "1:5"], seeds=3, seed=40, engine="flow", params=["fit=crop"],
                     batch="b1")
    assert [(t.pair, t.seed) for t in plan.tasks] == [("1:5", 40), ("1:5", 41), ("1:5", 42),
                                                      ("9:13", 40), ("9:13", 41), ("9:13", 42)]
    assert plan.tasks[0].task_id == "b1-1:5-s40"
    assert plan.command(plan.tasks[0])[:3] == ["tooncrafter-studio", "generate", str(project.folder)]
    assert plan.command(plan.tasks[0])[-4:] == ["--engine", "flow", "--param", "fit=crop"]
    assert plan.outside_sources  # the test footage lies beside the project, not in it
    with pytest.raises(InputError, match="not a key"):
        make_plan(project, ["2:5"])
    with pytest.raises(InputError, match="--seeds"):
        make_plan(project, None, seeds=0)




def test_doctor_names_the_command_log_and_help_says_which_codes_a_farm_retries(capsys, _private_user_home):
    from tooncrafter_studio.core.paths import user_log_dir

    assert run_cli(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"Command log (tracebacks of exit 1): {user_log_dir() / 'cli.log'}" in out
    assert str(_private_user_home) in str(user_log_dir())
    with pytest.raises(SystemExit):
        run_cli(["--help"])
    lines = capsys.readouterr().out.splitlines()
    retried = [line.split()[0] for line in lines if line.strip()[:3].strip().isdigit() and " retry " in line]
    assert retried == ["3"]
