"""The packaged smoke test: build the PyInstaller bundle, then use it as an animator would.

Marked `package` (about 2 minutes of build on 2 cores): `pytest -m "not package"` skips it locally;
`make test` runs it. TOONCRAFTER_STUDIO_BUNDLE=dist/tooncrafter-studio reuses a bundle built by
`make package` instead of building one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from waiting import PROCESS_CEILING_S

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
pytestmark = pytest.mark.package


def _exe(bundle: Path, name: str) -> Path:
    return bundle / (f"{name}.exe" if os.name == "nt" else name)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    given = os.environ.get("TOONCRAFTER_STUDIO_BUNDLE")
    if given:
        return Path(given).resolve()
    pytest.importorskip("PyInstaller")
    work = tmp_path_factory.mktemp("bundle")
    built = subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                            "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
                            str(ROOT / "packaging" / "tooncrafter_studio.spec")],
                           capture_output=True, text=True, timeout=PROCESS_CEILING_S, cwd=work)
    assert built.returncode == 0, built.stderr[-3000:]
    return work / "dist" / "tooncrafter-studio"


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ, QT_QPA_PLATFORM="offscreen", TOONCRAFTER_STUDIO_HOME=str(tmp_path / "home"))
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        environment.pop(key, None)
    return environment


def _run(bundle: Path, *args, env, cli=True, timeout=PROCESS_CEILING_S) -> subprocess.CompletedProcess:
    exe = _exe(bundle, "tooncrafter-studio-cli" if cli else "tooncrafter-studio")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=bundle.parent)


def test_the_bundle_has_no_torch_and_carries_what_it_needs(bundle):
    internal = bundle / "_internal"
    assert not (internal / "torch").exists() and not list(internal.glob("libtorch*"))
    assert (internal / "tooncrafter_studio" / "resources" / "sample_shot" / "project.json").exists()
    assert (internal / "worker_src" / "tooncrafter_studio" / "engines" / "worker.py").exists()
    assert (internal / "worker_src" / "tooncrafter_studio" / "diffusion" / "run" / "pipeline.py").exists()
    assert (internal / "LICENSE").exists() and "numpy" in (internal / "THIRD_PARTY_NOTICES.txt").read_text()
    assert list((internal / "uv").glob("uv*"))


def test_version_and_help(bundle, env):
    from tooncrafter_studio import __version__

    run = _run(bundle, "--version", env=env)
    assert run.returncode == 0 and run.stdout.strip() == f"tooncrafter-studio {__version__}"
    assert "engine" in _run(bundle, "--help", env=env).stdout
    doctor = _run(bundle, "doctor", env=env).stdout
    assert doctor.startswith(f"ToonCrafter Studio {__version__}")
    opencv = next(line for line in doctor.splitlines() if "opencv-python-headless" in line)
    assert "not installed" not in opencv and "engine install" in doctor


def test_the_frozen_app_opens_the_sample_shot_then_the_cli_generates_with_flow(bundle, env, tmp_path):
    opened = _run(bundle, "--gui", "--smoke-test", env=env, cli=False)
    assert opened.returncode == 0, opened.stderr[-2000:]
    report = json.loads(next(line for line in opened.stdout.splitlines() if line.startswith("{")))
    assert report["project"] == "sample_shot" and report["frames"] > 0
    shot = tmp_path / "home" / "data" / "sample_shot"
    generated = _run(bundle, "--quiet", "generate", shot, "--all", "--engine", "flow", env=env)
    assert generated.returncode == 0, generated.stderr[-2000:]
    info = json.loads(_run(bundle, "info", shot, "--json", env=env).stdout)
    assert "take" in json.dumps(info).lower()
    takes = list((shot / "takes").rglob("*.png"))
    assert takes, "the flow engine wrote no in-betweens"


def test_engine_install_plan_uses_the_bundled_uv(bundle, env):
    run = _run(bundle, "engine", "install", "--backend", "cpu", "--dry-run", env=env)
    assert run.returncode == 0, run.stderr
    assert str(bundle / "_internal" / "uv") in run.stdout and "--python 3.11" in run.stdout
    assert "https://download.pytorch.org/whl/cpu" in run.stdout


def test_models_download_works_frozen(bundle, env, tmp_path):
    sys.path.insert(0, str(TESTS / "setup"))
    from hub_server import HubServer

    payload = os.urandom(300_000)
    with HubServer() as hub:
        hub.state.add("Doubiiu/ToonCrafter", "model.ckpt", payload)
        env = dict(env, HF_ENDPOINT=hub.url)
        run = _run(bundle, "--quiet", "models", "download", "--yes", "--out", tmp_path / "models", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "models" / "model.ckpt").read_bytes() == payload


def test_the_shipped_worker_sources_run_an_engine(bundle):
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.worker import WorkerEngine

    engine = WorkerEngine("crossfade", sys.executable, bundle / "_internal" / "worker_src")
    try:
        keys = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
        frames = engine.interpolate(InterpolationRequest(*keys, [0.5])).frames
        assert int(frames[0][0, 0, 0]) == 100
        assert engine.worker_info["package"] == str((bundle / "_internal" / "worker_src" / "tooncrafter_studio").resolve())
    finally:
        engine.close()


@pytest.mark.skipif(os.name == "nt", reason="the stand-in environment's python is a shell script")
def test_the_frozen_app_runs_tooncrafter_in_the_engine_environment(bundle, env, tmp_path):
    """With a ready engine environment (here: a stand-in whose python is this test's, which has torch)
    the frozen app, which has no torch, reaches the ToonCrafter engine through the worker."""
    from tooncrafter_studio.setup.engine_env import ENV_DIR_ENV, MARKER_FILE

    engine_env = tmp_path / "engine-env"
    python = engine_env / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (engine_env / MARKER_FILE).write_text(json.dumps({"version": 1, "backend": "cpu", "variant": "cpu",
                                                      "index_url": "x", "pins": {}}))
    frames = bundle / "_internal" / "tooncrafter_studio" / "resources" / "sample_shot" / "frames"
    args = ("interpolate", frames / "ball.0001.png", frames / "ball.0005.png", "--count", "1", "--out",
            tmp_path / "out", "--engine", "tooncrafter", "--device", "cpu", "--model", tmp_path / "absent.ckpt")
    alone = _run(bundle, *args, env=env)
    assert alone.returncode == 3 and "needs torch" in alone.stderr
    through_worker = _run(bundle, *args, env=dict(env, **{ENV_DIR_ENV: str(engine_env)}))
    assert through_worker.returncode == 3
    assert "No ToonCrafter model was found" in through_worker.stderr and "absent.ckpt" in through_worker.stderr
