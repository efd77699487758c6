"""The CLI, the flow engine and farm work run where Qt is not installed (PySide6 is the `gui` extra);
the app says what to install instead of a traceback; `tooncrafter-studio PROJECT` opens the app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tooncrafter_studio.__main__ import GUI_MISSING, gui_args
from tooncrafter_studio.core.paths import resources_dir
from tooncrafter_studio.project.project import project_folder_of

# PySide6 made unimportable, as on a machine without the gui extra; prints what got imported.
WITHOUT_QT = """
import sys
sys.modules["PySide6"] = None  # `import PySide6` now raises ImportError, as when it is not installed
from tooncrafter_studio.__main__ import main
try:
    code = main(sys.argv[1:])
finally:
    print("QT-LOADED" if any(m.startswith(("PySide6.", "shiboken6")) for m in sys.modules) else "NO-QT")
sys.exit(code)
"""


def _run(*args, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOONCRAFTER_STUDIO_HOME=str(home), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("QT_QPA_PLATFORM", None)
    return subprocess.run([sys.executable, "-c", WITHOUT_QT, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=None)


@pytest.fixture
def sample(tmp_path) -> Path:
    folder = tmp_path / "sample_shot"
    shutil.copytree(resources_dir() / "sample_shot", folder)
    return folder


def test_headless_commands_run_without_qt(tmp_path, sample):
    home = tmp_path / "home"
    helped = _run("--help", home=home, cwd=tmp_path)
    assert helped.returncode == 0 and "interpolate" in helped.stdout and "NO-QT" in helped.stdout
    info = _run("info", sample, home=home, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "NO-QT" in info.stdout
    frames = sorted((sample / "frames").glob("*.png"))
    out = tmp_path / "inb"
    made = _run("--quiet", "interpolate", frames[0], frames[4], "--count", "3", "--out", out,
                home=home, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert len(list(out.glob("*.png"))) == 3 and "NO-QT" in made.stdout
    generated = _run("--quiet", "generate", sample, "--all", home=home, cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert "NO-QT" in generated.stdout


def test_the_app_without_qt_says_what_to_install(tmp_path, sample):
    for args in ((), (sample,)):
        run = _run(*args, home=tmp_path / "home", cwd=tmp_path)
        assert run.returncode == 3
        assert GUI_MISSING in run.stderr and "Traceback" not in run.stderr


def test_a_project_path_opens_the_app_on_it(tmp_path, sample):
    assert project_folder_of(str(sample)) == str(sample)
    assert project_folder_of(str(sample / "project.json")) == str(sample)
    assert project_folder_of(str(sample / "frames")) is None
    assert gui_args([str(sample)]) == ["--project", str(sample)]
    assert gui_args([str(sample / "project.json"), "--debug"]) == ["--project", str(sample), "--debug"]
    assert gui_args([]) == [] and gui_args(["--gui"]) == []
    assert gui_args(["info", str(sample)]) is None  # a command stays a command
    assert gui_args([str(sample / "frames" / "ball.0001.png")]) is None  # not a project: the CLI says why


def test_a_folder_named_like_a_command_is_still_the_command(tmp_path, monkeypatch):
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "project.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert gui_args(["info"]) is None
