"""The app bundle: its size, and cold start to the first painted window, frozen vs `python -m`.

Needs a bundle from `make package` (dist/tooncrafter-studio, or TOONCRAFTER_STUDIO_BUNDLE); without
one only the `python -m` start is measured. Each start is a new process with a fresh user folder
(so it opens the sample shot as on a first run), timed from spawn to the window's report line
(`--smoke-test`: after one full paint). Median of RUNS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 3


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def cold_start(command: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TOONCRAFTER_STUDIO_HOME=home)
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                   cwd=home)
        report: dict = {}
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                report = json.loads(line)
                break
        elapsed = time.perf_counter() - began
        process.wait(timeout=60)
    if report.get("project") != "sample_shot":
        raise RuntimeError(f"{command[0]} did not open the sample shot: {report}")
    return elapsed, report


def run() -> None:
    bundle = Path(os.environ.get("TOONCRAFTER_STUDIO_BUNDLE", ROOT / "dist" / "tooncrafter-studio"))
    frozen = bundle / ("tooncrafter-studio.exe" if os.name == "nt" else "tooncrafter-studio")
    commands = {"python -m": [sys.executable, "-m", "tooncrafter_studio", "--gui", "--smoke-test"]}
    if frozen.exists():
        size = folder_size(bundle)
        internal = bundle / "_internal"
        parts = sorted(((folder_size(p) if p.is_dir() else p.lstat().st_size, p.name) for p in internal.iterdir()
                        if not p.is_symlink()), reverse=True)[:6]
        print(f"bundle {bundle}: {size / 1e6:.0f} MB on disk")
        print("  largest parts: " + ", ".join(f"{name} {n / 1e6:.0f} MB" for n, name in parts))
        commands["frozen"] = [str(frozen), "--gui", "--smoke-test"]
    else:
        print(f"no bundle at {bundle} (make package); measuring `python -m` only")
    results = {}
    for label, command in commands.items():
        times = [cold_start(command)[0] for _ in range(RUNS)]
        results[label] = statistics.median(times)
        print(f"cold start to first painted window, {label:<9}: median {results[label]:.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    if len(results) == 2:
        print(f"frozen / python -m: {results['frozen'] / results['python -m']:.2f}x")
