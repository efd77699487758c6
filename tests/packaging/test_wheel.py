"""The wheel: `pip install tooncrafter_studio-*.whl` in a clean venv gives a working app and CLI,
with the sample shot and the icons as package data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from waiting import PROCESS_CEILING_S

ROOT = Path(__file__).resolve().parents[2]


def _run(*command, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    # never from the checkout: `python -c` would import the package from the current folder
    cwd = cwd or Path(os.environ.get("TMPDIR", "/tmp") if os.name != "nt" else os.environ["TEMP"])
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=PROCESS_CEILING_S, cwd=cwd, **kwargs)


def _setuptools_at_least(major: int) -> bool:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0]) >= major
    except Exception:
        return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    # build from a copy, so that the checkout gets no build/ or egg-info
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "tooncrafter_studio", source / "tooncrafter_studio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the installed setuptools when it is new enough for pyproject's licence field (offline), else
    # pip's isolated build (fetches setuptools from PyPI; a fresh Python 3.11 venv has 65.x)
    isolation = [] if _setuptools_at_least(77) else ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, *isolation, "-q",
                 "-w", work / "dist", source, cwd=work)
    assert built.returncode == 0, built.stderr
    wheel = next((work / "dist").glob("tooncrafter_studio-*.whl"))
    venv = work / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # our wheel alone; its dependencies come from this environment's site-packages (offline, fast)
    done = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)
    assert done.returncode == 0, done.stderr
    asked = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    assert asked.returncode == 0 and asked.stdout.strip(), f"the new venv's Python failed: {asked.stderr}"
    purelib = asked.stdout.strip()
    assert Path(purelib).is_dir(), f"the new venv has no site-packages at {purelib}"
    Path(purelib, "_main_env_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = venv / ("Scripts/tooncrafter-studio.exe" if os.name == "nt" else "bin/tooncrafter-studio")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TOONCRAFTER_STUDIO_HOME=str(work / "home"))
    env.pop("PYTHONPATH", None)
    return {"wheel": wheel, "python": python, "script": script, "env": env, "work": work}


def test_the_wheel_carries_the_resources_and_no_tests(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "tooncrafter_studio/resources/sample_shot/project.json" in names
    assert sum(n.startswith("tooncrafter_studio/resources/sample_shot/frames/") for n in names) >= 10
    assert "tooncrafter_studio/resources/icons/icon-256.png" in names
    assert {f"tooncrafter_studio/resources/farm/{name}" for name in (
        "submit_opencue.py", "submit_flamenco.py", "submit_deadline.py", "tooncrafter.js")} <= set(names)
    assert not any(n.startswith("tests/") for n in names)


def test_the_installed_cli_runs_from_the_venv_with_its_resources(installed):
    found = _run(installed["python"], "-c", "import json, tooncrafter_studio.core.paths as p; "
                 "print(json.dumps([p.__file__, str(p.resources_dir())]))", env=installed["env"])
    module, resources = json.loads(found.stdout)
    assert module.startswith(str(installed["work"] / "venv")) and Path(resources, "sample_shot", "project.json").exists()
    frames = Path(resources) / "sample_shot" / "frames"
    out = installed["work"] / "inb"
    run = _run(installed["script"], "--quiet", "interpolate", frames / "ball.0001.png", frames / "ball.0005.png",
               "--count", "3", "--out", out, env=installed["env"])
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"inbetween.000{i}.png" for i in (1, 2, 3)]


def test_the_installed_app_opens_the_sample_shot(installed):
    run = _run(installed["script"], "--gui", "--smoke-test", env=installed["env"])
    assert run.returncode == 0, run.stderr
    report = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("{")))
    assert report["project"] == "sample_shot" and report["frames"] > 0


def test_an_installed_wheel_gives_the_worker_a_folder_with_only_our_package(installed):
    """site-packages must not shadow the engine environment's packages: the worker gets a copy."""
    found = _run(installed["python"], "-c", "from tooncrafter_studio.setup.engine_env import package_source_root; "
                 "print(package_source_root())", env=installed["env"])
    root = Path(found.stdout.strip())
    assert root.is_relative_to(installed["work"] / "home") and [p.name for p in root.iterdir()] == ["tooncrafter_studio"]
    assert (root / "tooncrafter_studio" / "engines" / "worker.py").exists()
    assert not (root / "tooncrafter_studio" / "qt").exists()

    import numpy as np

    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.worker import WorkerEngine

    engine = WorkerEngine("crossfade", installed["python"], root)
    try:
        keys = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 100, np.uint8)
        assert int(engine.interpolate(InterpolationRequest(*keys, [0.5])).frames[0][0, 0, 0]) == 50
        assert engine.worker_info["package"] == str(root / "tooncrafter_studio")
    finally:
        engine.close()
