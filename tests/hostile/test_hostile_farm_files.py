"""Farm job files that a project or shot name could turn against the farm (docs/threat-model.md,
"Files that another program runs"). Each attack is run the way the farm would run the file: the
OpenCue submitter by Python, the Flamenco job type by node, Deadline's key=value files read by a
reader that ends lines at CR. The rule under test is farm_text.py's: user text is data, never code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_kit import assert_refused, cli, digest, make_footage, python_env
from waiting import PROCESS_CEILING_S

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.project.project import Project

RESOURCES = Path(__file__).resolve().parents[2] / "tooncrafter_studio" / "resources" / "farm"
# A folder name that closes a Python docstring and runs code at the submitter's import (no "/" needed)
PYTHON_BREAKOUT = 'x"""+__import__("pathlib").Path("PWNED").touch()+"""'
JS_PAYLOAD = 'require("fs").writeFileSync("PWNED", "x");'


def _shot(root: Path, name: str | None = None, footage: Path | None = None) -> Path:
    footage = footage or make_footage(root / "footage")
    assert run_cli(["new", str(root / "shot"), "--source", str(footage), "-q"]) == 0
    assert run_cli(["keys", str(root / "shot"), "--frames", "1,5"]) == 0
    if name is not None:  # a shot name as another tool (or a hand-edited project.json) could leave it
        project = Project.open(root / "shot")
        project.shot.name = name
        project.save()
    return root / "shot"


def _export(capsys, shot: Path, fmt: str, out: Path, *extra):
    return cli(capsys, "farm", "export", shot, "--all", "--seed", "1", "--engine", "flow", "--format", fmt,
               "--out", out, *extra)


@pytest.mark.parametrize("where", ["folder", "shot name"])
def test_opencue_submitter_never_runs_a_name(tmp_path, capsys, where):
    root = tmp_path / (PYTHON_BREAKOUT if where == "folder" else "plain")
    shot = _shot(root, PYTHON_BREAKOUT if where == "shot name" else None)
    code, _out, err = _export(capsys, shot, "opencue", tmp_path / "job")
    assert code == 0, err
    script = tmp_path / "job" / "submit_opencue.py"
    # run it as the submitting TD would (without OpenCue installed it stops at its import check)
    run = tmp_path / "cwd"
    run.mkdir()
    result = subprocess.run([sys.executable, str(script), "--dry-run"], cwd=run, capture_output=True, text=True,
                            env=python_env(), timeout=PROCESS_CEILING_S)
    assert not (run / "PWNED").exists(), result.stderr
    assert result.returncode in (0, 3), result.stderr
    # the script is ours, the same bytes for every export: it cannot hold the name
    assert script.read_bytes() == (RESOURCES / "submit_opencue.py").read_bytes()
    data = json.loads((tmp_path / "job" / "opencue_job.json").read_text(encoding="ascii"))
    assert data["project_dir"] == str(shot)  # carried, as data
    assert data["shot"].isidentifier() or data["shot"].replace(".", "_").replace("-", "_").isidentifier()


NODE = shutil.which("node")


@pytest.mark.parametrize("separator", ["\n", "\u2028", "\u2029", "\r"])
def test_flamenco_job_type_never_runs_a_name(tmp_path, capsys, separator):
    name = f"shot{separator}{JS_PAYLOAD}//"
    shot = _shot(tmp_path / "p", name)
    out = tmp_path / "job"
    code, _out, err = _export(capsys, shot, "flamenco", out)
    assert_refused(code, err, 2, "shot name", "cannot carry")
    assert not out.exists()  # refused before anything was written
    # and had something been written, loading it in the Manager's place would run nothing
    if NODE:
        run = tmp_path / "cwd"
        run.mkdir()
        for script in out.glob("*.js") if out.exists() else []:
            subprocess.run([NODE, "-e", "require(process.argv[1])", str(script)], cwd=run, timeout=PROCESS_CEILING_S,
                           capture_output=True)
        assert not (run / "PWNED").exists()


def test_flamenco_job_type_is_the_same_file_for_every_project(tmp_path, capsys):
    shot = _shot(tmp_path / 'a "quoted` ${x} folder', 'shot */ </script> \\u2028')
    code, _out, err = _export(capsys, shot, "flamenco", tmp_path / "job")
    assert code == 0, err
    assert (tmp_path / "job" / "tooncrafter.js").read_bytes() == (RESOURCES / "tooncrafter.js").read_bytes()
    assert (tmp_path / "job" / "flamenco_job.json").read_bytes().isascii()


@pytest.mark.parametrize("where", ["folder", "shot name"])
def test_deadline_key_value_files_refuse_a_carriage_return(tmp_path, capsys, where):
    evil = "x\rPreJobScript=/tmp/evil.py"
    if where == "folder":
        shot = _shot(tmp_path / evil)
    else:
        shot = _shot(tmp_path / "p", evil)
    out = tmp_path / "job"
    before = digest(shot)
    code, _out, err = _export(capsys, shot, "deadline", out)
    assert_refused(code, err, 2, "U+000D", "cannot carry")
    assert not out.exists()
    assert digest(shot) == before


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x7f", "\x85", "\u2028", "\t"])
def test_every_control_character_is_refused_in_key_value_files(character):
    from tooncrafter_studio.core.errors import InputError
    from tooncrafter_studio.pipeline.farm_text import key_value_text

    with pytest.raises(InputError, match="cannot carry"):
        key_value_text({"Name": f"a{character}b"})
    with pytest.raises(InputError, match="cannot be a key"):
        key_value_text({f"Na{character}me": "a"})
    assert key_value_text({"Name": "Shot 010 — café"}) == "Name=Shot 010 — café\n"


@pytest.mark.parametrize("fmt", ["openjd", "deadline", "opencue", "flamenco"])
def test_a_folder_name_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys, fmt):
    # made under a plain name, then renamed as another system's file share would show it
    _shot(tmp_path / "plain", footage=make_footage(tmp_path / "footage"))
    try:
        os.rename(bytes(tmp_path / "plain"), bytes(tmp_path) + b"/caf\xe9")
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take names that are not UTF-8")
    shot = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9")) / "shot"
    out = tmp_path / "job"
    code, _out, err = _export(capsys, shot, fmt, out)
    assert_refused(code, err, 2, "not UTF-8", "rename")
    assert not out.exists()


def test_deadline_command_lines_carry_hostile_names_as_arguments(tmp_path, capsys):
    """A folder full of shell and Windows metacharacters reaches `generate` as one argument."""
    from tooncrafter_studio.pipeline.farm_plan import split_windows_command_line

    folder = tmp_path / 'it\'s "a" $(touch PWNED) `x` %PATH% & ^ |'
    shot = _shot(folder)
    code, _out, err = _export(capsys, shot, "deadline", tmp_path / "job")
    assert code == 0, err
    (line, *_rest) = (tmp_path / "job" / "commands.txt").read_text(encoding="utf-8").splitlines()
    assert split_windows_command_line(line)[:3] == ["tooncrafter-studio", "generate", str(shot)]
