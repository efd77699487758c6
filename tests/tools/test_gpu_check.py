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
