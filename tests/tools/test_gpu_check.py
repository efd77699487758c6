"""tools/gpu_check.sh parses, and its Python part runs on the CPU in dry mode (reduced model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import PROCESS_CEILING_S

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.sh"


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_check_dry_run_times_generations_and_writes_json(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "generation.log").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_codes"] == {"generation": "0"}
    generation = summary["generation"]
    assert generation["dry_run"] is True and generation["device"] == "cpu"
    runs = generation["runs"]
    assert [(r["mode"], r["steps"]) for r in runs] == [("high", 1), ("high", 2)]
    for run in runs:
        assert run["frames_ok"] and run["frames_shape"] == [16, 64, 64, 3]
        assert run["step_seconds"] > 0 and set(run["stages"]) == {"encode", "denoise", "decode"}


def test_gpu_check_quick_dry_run_records_every_step(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "OUT": str(tmp_path), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", str(SCRIPT), "--quick"], env=env, capture_output=True, text=True,
                          timeout=PROCESS_CEILING_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu_quick.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["env", "attention", "engine", "cancel", "fp32_decode", "oom_retry", "pinned_transfer",
                           "selftest"]
    assert all(step["ok"] for step in steps.values()), steps
    assert report["dry_run"] is True and "finished" in report
    assert steps["engine"]["runs"][0]["frames_ok"] and steps["engine"]["runs"][0]["memory_mode"] == "high"
    assert steps["cancel"]["cancelled"] is True
    assert {c["kernel"] for c in steps["attention"]["calls"]} == {"auto", "math"}


def test_gpu_quick_writes_its_json_after_every_step_even_a_failing_one(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_quick
    finally:
        sys.path.remove(str(ROOT / "tools"))
    path = tmp_path / "gpu_quick.json"
    report = gpu_quick.Report(path, dry=True)
    assert json.loads(path.read_text())["steps"] == {}
    report.step("first", lambda: {"figure": 1})
    assert json.loads(path.read_text())["steps"]["first"]["figure"] == 1

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access")

    report.step("second", broken)
    second = json.loads(path.read_text())["steps"]["second"]
    assert second["ok"] is False and "illegal memory access" in second["error"]


def test_gpu_check_quick_stops_at_once_without_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    env.pop("GPU_CHECK_DRY_RUN", None)
    proc = subprocess.run(["bash", str(SCRIPT), "--quick"], env=env, capture_output=True, text=True,
                          timeout=PROCESS_CEILING_S)
    assert proc.returncode == 2 and "is_available() is False" in proc.stdout
    report = json.loads((tmp_path / "gpu_quick.json").read_text())
    assert report["steps"]["env"]["ok"] is False
