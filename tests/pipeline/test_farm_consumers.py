"""Each farm format read by its real consumer where one installs here: OpenCue's own pyoutline
serializer, node running the Flamenco job type, a real HTTP server taking the Flamenco submission,
openjd's path mapping, and Deadline command lines split by the Windows rules its plugin's
processes use. What no package brings (deadlinecommand, cuebot, a Flamenco Manager) is named in
the README's "Studios and farms"."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pipeline_factories import make_project
from test_farm_export import EXECUTABLE, KEYS, OPENJD, ROOT
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.pipeline.farm_formats import write_farm_job
from tooncrafter_studio.pipeline.farm_plan import (
    FarmRequest,
    make_plan,
    split_executable,
    split_windows_command_line,
    windows_command_line,
)
from tooncrafter_studio.project.project import Project

WINDOWS_EXE = r"C:\Program Files\ToonCrafter Studio\tooncrafter-studio.exe"
WINDOWS_PROJECT = r"\\render-nas\Shows\My Show\shot 010"
NODE = shutil.which("node")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _plan(tmp_path, **request):
    project = make_project(tmp_path, keys=KEYS, count=25)
    plan = make_plan(project, ["1:5", "9:13"], seeds=2, seed=3, engine="flow", executable=EXECUTABLE, batch="abc123",
                     request=FarmRequest(**request))
    return project, plan


def _run_take(words: list[str]) -> None:
    result = subprocess.run(words, capture_output=True, text=True, timeout=PROCESS_CEILING_S, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]


# -------------------------------------------------------------------- Windows paths


def test_a_windows_executable_keeps_its_backslashes_and_spaces():
    assert split_executable(f'"{WINDOWS_EXE}" --quiet') == [WINDOWS_EXE, "--quiet"]
    assert split_executable(r"C:\Python311\python.exe -m tooncrafter_studio") == [
        r"C:\Python311\python.exe", "-m", "tooncrafter_studio"]
    assert split_executable(r"\\nas\tools\tooncrafter-studio.exe") == [r"\\nas\tools\tooncrafter-studio.exe"]
    # unquoted with a space: refused, never silently split or mangled into C:Program
    with pytest.raises(InputError, match="double quotes"):
        split_executable(WINDOWS_EXE)
    assert split_executable("/opt/tc/bin/tooncrafter-studio --debug") == ["/opt/tc/bin/tooncrafter-studio", "--debug"]


def test_the_cli_refuses_an_unquoted_windows_path_with_a_space(tmp_path, capsys):
    project = make_project(tmp_path, keys=KEYS, count=25)
    code = run_cli(["farm", "export", str(project.folder), "--all", "--engine", "flow", "--format", "deadline",
                    "--executable", WINDOWS_EXE, "--out", str(tmp_path / "job")])
    err = capsys.readouterr().err
    assert code == 2 and "double quotes" in err and "C:Program" not in err
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize("arg", ["plain", "with space", 'quote"inside', "trailing\\", "tr ail\\\\", "",
                                 r"C:\Program Files\x", 'a\\"b', "tab\there", "ünïcødé 東京"])
def test_windows_quoting_round_trips(arg):
    line = windows_command_line(["prog", arg, "next"])
    assert split_windows_command_line(line) == ["prog", arg, "next"]


# -------------------------------------------------------------------- Deadline


def test_deadline_lines_run_as_the_plugin_runs_them(tmp_path):
    project, plan = _plan(tmp_path / "p", priority=70, timeout_minutes=30, pool="anim", group="gpu")
    out = tmp_path / "job"
    files = write_farm_job(plan, "deadline", out)
    assert [f.name for f in files] == ["job_info.job", "plugin_info.job", "commands.txt", "submit_deadline.py"]
    job_info = dict(line.split("=", 1) for line in (out / "job_info.job").read_text().splitlines())
    assert job_info["Plugin"] == "CommandScript" and job_info["Frames"] == "0-3" and job_info["ChunkSize"] == "1"
    assert (job_info["Priority"], job_info["TaskTimeoutMinutes"], job_info["Pool"], job_info["Group"]) == (
        "70", "30", "anim", "gpu")
    lines = (out / "commands.txt").read_text().splitlines()
    assert [split_windows_command_line(line) for line in lines] == [plan.command(t) for t in plan.tasks]
    _run_take(split_windows_command_line(lines[0]))  # one task, as the farm runs it
    (take,) = Project.open(project.folder).shot.takes.values()
    assert take.seed == 3 and take.params["task_id"] == "abc123-1:5-s3"


def test_deadline_windows_paths_with_spaces_survive(tmp_path):
    _project, plan = _plan(tmp_path / "p", project_dir=WINDOWS_PROJECT)
    plan.executable = split_executable(f'"{WINDOWS_EXE}"')
    out = tmp_path / "job"
    write_farm_job(plan, "deadline", out)
    first = (out / "commands.txt").read_text().splitlines()[0]
    assert first.startswith(f'"{WINDOWS_EXE}" generate "{WINDOWS_PROJECT}" --pair 1:5')
    assert split_windows_command_line(first)[:3] == [WINDOWS_EXE, "generate", WINDOWS_PROJECT]
    plugin_info = (out / "plugin_info.job").read_text()
    assert plugin_info == f"StartupDirectory={WINDOWS_PROJECT}\n"


def test_submit_deadline_calls_deadlinecommand_from_path(tmp_path):
    _project, plan = _plan(tmp_path / "p")
    out = tmp_path / "job with space"
    write_farm_job(plan, "deadline", out)
    script = out / "submit_deadline.py"
    missing = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                             env={**_env(), "PATH": str(tmp_path / "empty"), "DEADLINE_PATH": ""})
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1 and "deadlinecommand" in missing.stderr
    # a stand-in deadlinecommand records what it was given (Deadline's client does not install from PyPI)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "deadlinecommand"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                          env={**_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        str(out / "job_info.job"), str(out / "plugin_info.job"), str(out / "commands.txt")]
    # with an export job: both submitted at once, the second dependent on the first
    plan.farm.export_dir = r"\\nas\out\shot 010"
    write_farm_job(plan, "deadline", out)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                          env={**_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:3] == ["-SubmitMultipleJobs", "-dependent", "-job"] and argv[6] == "-job"
    assert argv[7:] == [str(out / n) for n in ("export_job_info.job", "export_plugin_info.job", "export_commands.txt")]
    (line,) = (out / "export_commands.txt").read_text().splitlines()
    assert split_windows_command_line(line)[3:] == ["export", str(plan.project_dir), "--out",
                                                    r"\\nas\out\shot 010", "--include-pending", "--overwrite"]


# -------------------------------------------------------------------- OpenCue (the real pyoutline)


def _opencue_spec(out: Path, tmp_path: Path, *args) -> ET.Element:
    home = tmp_path / "home"  # pyoutline keeps its session folders under ~/.opencue
    home.mkdir(exist_ok=True)
    result = subprocess.run([sys.executable, str(out / "submit_opencue.py"), "--dry-run", *args], capture_output=True,
                            text=True, timeout=PROCESS_CEILING_S, env={**_env(), "HOME": str(home), "SHOW": "anim"})
    assert result.returncode == 0, result.stderr[-3000:]
    return ET.fromstring(result.stdout[result.stdout.index("<spec>"):])


def test_opencue_dry_run_through_pyoutline_runs_on_a_render_host(tmp_path):
    pytest.importorskip("outline")
    project, plan = _plan(tmp_path / "p", priority=80, timeout_minutes=45, tag="gpu")
    plan.gpus_per_task = 1  # as for ToonCrafter: the layer asks for the GPU in OpenCue's terms
    out = tmp_path / "job"
    write_farm_job(plan, "opencue", out)
    spec = _opencue_spec(out, tmp_path)
    job = spec.find("job")
    assert spec.findtext("show") == "anim" and job.findtext("priority") == "80"
    layers = job.findall("layers/layer")
    assert len(layers) == 4 and {layer.get("type") for layer in layers} == {"Render"}
    first = layers[0]
    assert (first.findtext("range"), first.findtext("gpus"), first.findtext("gpu_memory"), first.findtext("timeout"),
            first.findtext("tags"), first.findtext("memory")) == ("1", "1", "12g", "45", "gpu", "8g")
    assert [shlex.split(layer.findtext("cmd")) for layer in layers] == [plan.command(t) for t in plan.tasks]
    # RQD runs a frame's command through a shell: do the same with the first layer
    _run_take(["/bin/sh", "-c", first.findtext("cmd")])
    (take,) = Project.open(project.folder).shot.takes.values()
    assert take.params["task_id"] == "abc123-1:5-s3"


def test_opencue_export_layer_waits_for_every_task(tmp_path):
    pytest.importorskip("outline")
    _project, plan = _plan(tmp_path / "p", export_dir="/mnt/out/shot 010")
    out = tmp_path / "job"
    write_farm_job(plan, "opencue", out)
    spec = _opencue_spec(out, tmp_path)
    layers = spec.findall("job/layers/layer")
    assert [layer.get("name") for layer in layers][-1] == "export"
    assert shlex.split(layers[-1].findtext("cmd"))[3:] == [
        "export", str(plan.project_dir), "--out", "/mnt/out/shot 010", "--include-pending", "--overwrite"]
    depends = spec.findall("depends/depend")
    assert len(depends) == 4 and {d.get("type") for d in depends} == {"LAYER_ON_LAYER"}
    assert {d.findtext("deplayer") for d in depends} == {"export"}
    assert {d.findtext("onlayer") for d in depends} == {layer.get("name") for layer in layers[:-1]}


def test_opencue_path_mapping_and_windows_hosts(tmp_path):
    pytest.importorskip("outline")
    _project, plan = _plan(tmp_path / "p")
    out = tmp_path / "job"
    write_farm_job(plan, "opencue", out)
    posix = _opencue_spec(out, tmp_path, "--project-dir", "/mnt/shows/my show/shot")
    assert shlex.split(posix.find("job/layers/layer").findtext("cmd"))[3:5] == ["generate", "/mnt/shows/my show/shot"]
    windows = _opencue_spec(out, tmp_path, "--project-dir", WINDOWS_PROJECT, "--host-os", "windows")
    cmd = windows.find("job/layers/layer").findtext("cmd")
    assert split_windows_command_line(cmd)[3:5] == ["generate", WINDOWS_PROJECT]


# -------------------------------------------------------------------- Flamenco


class _Manager(BaseHTTPRequestHandler):
    """Stands in for the Flamenco Manager's job submission endpoint, recording what it gets."""

    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        answer = json.dumps({"id": "0f0f-job", **body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


COMPILE_JOB = r"""
const fs = require("fs");
const vm = require("vm");
const [script, jobFile] = process.argv.slice(1);
const commands = [];
const author = {
    Task: (name, type) => ({ name, type, commands: [], addCommand(c) { this.commands.push(c); } }),
    Command: (type, params) => ({ type, params }),
};
const context = { author, JSON, String, Array, Error };
author.Task = (name, type) => ({ name, type, commands: [], dependencies: [],
    addCommand(c) { this.commands.push(c); }, addDependency(t) { this.dependencies.push(t.name); } });
vm.createContext(context);
vm.runInContext(fs.readFileSync(script, "utf8"), context, { filename: script });
const submitted = JSON.parse(fs.readFileSync(jobFile, "utf8"));
const job = { settings: submitted.settings, tasks: [], addTask(t) { this.tasks.push(t); } };
vm.runInContext("compileJob", context)(job);
const declared = vm.runInContext("JOB_TYPE", context).settings.map((s) => s.key);
process.stdout.write(JSON.stringify({ declared, tasks: job.tasks }));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_flamenco_submission_compiles_in_the_job_type(tmp_path):
    project, plan = _plan(tmp_path / "p", priority=65, tag="5c1e-gpu", export_dir=str(tmp_path / "exported"))
    out = tmp_path / "job"
    write_farm_job(plan, "flamenco", out)
    _Manager.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Manager)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run([sys.executable, str(out / "submit_flamenco.py"), "--manager",
                                 f"http://127.0.0.1:{server.server_port}"], capture_output=True, text=True,
                                timeout=PROCESS_CEILING_S, env=_env())
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert "submitted job 0f0f-job: 4 tasks" in result.stdout
    ((path, content_type, body),) = _Manager.received
    assert (path, content_type) == ("/api/v3/jobs", "application/json")
    assert (body["type"], body["priority"], body["worker_tag"]) == ("tooncrafter", 65, "5c1e-gpu")
    assert body["settings"]["batch"] == "abc123" and body["settings"]["project_dir"] == str(project.folder)
    # the Manager compiles the job with the job type: node runs the same script the Manager loads
    (tmp_path / "submitted.json").write_text(json.dumps(body))
    compiled = subprocess.run([NODE, "-e", COMPILE_JOB, str(out / "tooncrafter.js"), str(tmp_path / "submitted.json")],
                              capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert compiled.returncode == 0, compiled.stderr
    found = json.loads(compiled.stdout)
    assert set(body["settings"]) <= set(found["declared"])
    *inbetweens, export = found["tasks"]
    commands = [[t["commands"][0]["params"]["exe"], *t["commands"][0]["params"]["args"]] for t in inbetweens]
    assert commands == [plan.command(t) for t in plan.tasks]
    assert [t["name"] for t in inbetweens] == [t.name for t in plan.tasks]
    assert export["name"] == "export" and export["dependencies"] == [t.name for t in plan.tasks]
    assert [export["commands"][0]["params"]["exe"], *export["commands"][0]["params"]["args"]] == plan.export_command()
    _run_take(commands[0])
    assert len(Project.open(project.folder).shot.takes) == 1


def test_flamenco_submitter_reports_an_unreachable_manager_in_one_line(tmp_path):
    _project, plan = _plan(tmp_path / "p")
    write_farm_job(plan, "flamenco", tmp_path / "job")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Manager)
    port = server.server_port
    server.server_close()  # nothing listens there now
    result = subprocess.run([sys.executable, str(tmp_path / "job" / "submit_flamenco.py"), "--manager",
                             f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=PROCESS_CEILING_S, env=_env())
    assert result.returncode == 3 and result.stderr.count("\n") == 1 and "cannot reach" in result.stderr


# -------------------------------------------------------------------- OpenJD: path mapping, bundle names


def test_openjd_bundle_names_and_windows_to_linux_path_mapping(tmp_path):
    model = pytest.importorskip("openjd.model")
    if not Path(OPENJD).exists():
        pytest.skip("openjd-cli is not installed")
    project, plan = _plan(tmp_path / "p", timeout_minutes=20)
    out = tmp_path / "job"
    files = write_farm_job(dataclasses.replace(plan, gpus_per_task=1), "openjd", out)
    assert [f.name for f in files] == ["template.json", "parameter_values.json", "job.params.json"]
    gpu_template = json.loads((out / "template.json").read_text())
    model.decode_job_template(template=gpu_template)
    assert gpu_template["steps"][0]["hostRequirements"]["amounts"][0] == {"name": "amount.worker.gpu", "min": 1}
    assert json.loads((out / "parameter_values.json").read_text()) == {
        "parameterValues": [{"name": "ProjectDir", "value": str(project.folder)}]}
    write_farm_job(plan, "openjd", out)  # the CPU engine's job runs here
    # submitted from a Mac (the project under /Volumes/studio), run on this host where it is mounted elsewhere
    # (openjd run on Linux takes a Windows value as a relative path, so WINDOWS rules are a farm's to apply)
    rules = {"version": "pathmapping-1.0", "path_mapping_rules": [
        {"source_path_format": "POSIX", "source_path": "/Volumes/studio", "destination_path": str(tmp_path / "p")}]}
    result = subprocess.run([OPENJD, "run", str(out / "template.json"), "-p", "ProjectDir=/Volumes/studio/shot",
                             "--path-mapping-rules", json.dumps(rules), "--task-param", "Pair=9:13",
                             "--task-param", "Seed=4"], capture_output=True, text=True, timeout=PROCESS_CEILING_S, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (take,) = Project.open(project.folder).shot.takes.values()
    assert take.params["task_id"] == "abc123-9:13-s4"


def test_openjd_export_step_runs_after_every_task(tmp_path):
    pytest.importorskip("openjd.model")
    if not Path(OPENJD).exists():
        pytest.skip("openjd-cli is not installed")
    exported = tmp_path / "exported"
    project, plan = _plan(tmp_path / "p", export_dir=str(exported))
    out = tmp_path / "job"
    write_farm_job(plan, "openjd", out)
    template = json.loads((out / "template.json").read_text())
    assert [s["name"] for s in template["steps"]] == ["Inbetween", "Export"]
    assert template["steps"][1]["dependencies"] == [{"dependsOn": "Inbetween"}]
    result = subprocess.run([OPENJD, "run", str(out / "template.json"), "-p", f"file://{out / 'job.params.json'}",
                             "--step", "Export", "--run-dependencies"], capture_output=True, text=True, timeout=PROCESS_CEILING_S,
                            env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert len(Project.open(project.folder).shot.takes) == 4  # every task ran before the export
    assert len(list(exported.glob("*.png"))) == 25  # the whole shot, its new in-betweens included


def test_opencue_launch_sends_the_spec_with_only_the_network_call_replaced(tmp_path, monkeypatch, capsys):
    pytest.importorskip("outline")
    import importlib.util

    import opencue

    _project, plan = _plan(tmp_path / "p")
    out = tmp_path / "job"
    write_farm_job(plan, "opencue", out)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SHOW", "anim")
    sent = []

    class _Job:
        def name(self):
            return "anim-shot-tooncrafter"

    def launch_spec_and_wait(spec):  # cuebot's gRPC call: the one thing not run here
        sent.append(spec)
        return [_Job()]

    monkeypatch.setattr(opencue.api, "launchSpecAndWait", launch_spec_and_wait)
    loaded = importlib.util.spec_from_file_location("submit_opencue_under_test", out / "submit_opencue.py")
    script = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(script)
    assert script.main([]) == 0
    assert "submitted 4 tasks: anim-shot-tooncrafter" in capsys.readouterr().out
    (spec,) = sent
    layers = ET.fromstring(spec[spec.index("<spec>"):]).findall("job/layers/layer")
    assert [shlex.split(layer.findtext("cmd")) for layer in layers] == [plan.command(t) for t in plan.tasks]


def test_the_openjd_export_is_a_deadline_cloud_job_bundle(tmp_path):
    """Read by Deadline Cloud's own client library (the `deadline` package), as `deadline bundle submit` does."""
    loader = pytest.importorskip("deadline.client.job_bundle.loader")
    from deadline.client.job_bundle.parameters import read_job_bundle_parameters

    project, plan = _plan(tmp_path / "p", export_dir=str(tmp_path / "exported"))
    out = tmp_path / "bundle"
    write_farm_job(plan, "openjd", out)
    assert loader.is_job_bundle_dir(str(out))
    values = {p["name"]: p.get("value") for p in read_job_bundle_parameters(str(out))}
    assert values == {"ProjectDir": str(project.folder), "ExportDir": str(tmp_path / "exported")}
