"""The flow engine: quality on the cartoon eval sets (via the shared scorer) and speed.

Quality: runs `../shared/eval/run_eval.py` on the public and real sets with the CLI
(`tooncrafter-studio interpolate ... --engine flow`) and prints the means next to the baselines
that the scorer's README lists. The scorer needs scipy and scikit-image; when the venv lacks
them, set EVAL_PYTHONPATH to a folder that has them (e.g. `pip install --target DIR scipy
scikit-image`), or the quality part is skipped with a note.

Speed: in-process, a 3-in-between segment (flow once per segment) at 512x320 and 1920x1080,
best of a few runs, in in-betweens per second, for the default "best" quality and the "fast"
preset (request.params["quality"]); the load average is printed beside it because other work on
a shared 2-core machine slows every figure down. The scorer runs the CLI, i.e. "best".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"

# From ../shared/eval/README.md (2 cores): PSNR dB, SSIM, Chamfer px.
BASELINES = {
    "public": {"hold": (19.64, 0.8910, 3.89), "fade": (20.81, 0.8739, 3.72), "flow": (23.24, 0.9075, 1.98),
               "splat": (23.93, 0.9201, 1.26)},
    "real": {"hold": (26.22, 0.8506, None), "fade": (27.80, 0.8516, None), "flow": (29.24, 0.8826, None),
             "splat": (29.43, 0.8844, None)},
}
GOALS = "goals: public PSNR >= best + 1.0 dB (24.93), Chamfer < 1.26; real PSNR > 29.43, SSIM > 0.8844; no key copies"


def _scorer_env() -> dict[str, str] | None:
    env = dict(os.environ)
    extra = os.environ.get("EVAL_PYTHONPATH")
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra, env.get("PYTHONPATH", "")) if p)
    probe = subprocess.run([sys.executable, "-c", "import scipy, skimage"], env=env, capture_output=True)
    return env if probe.returncode == 0 else None


def _cli() -> str:
    exe = Path(sys.executable).with_name("tooncrafter-studio")
    if exe.exists():
        return str(exe)
    return f"{sys.executable} -m tooncrafter_studio"


def score(set_name: str, env: dict[str, str]) -> dict | None:
    data = "public" if set_name == "public" else str(EVAL / "data" / set_name)
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "scores.json"
        cmd = f"{_cli()} interpolate {{start}} {{end}} --count {{n}} --engine flow --out {{out}} --quiet"
        run = subprocess.run([sys.executable, str(EVAL / "run_eval.py"), "--cmd", cmd, "--set", data,
                              "--json-out", str(out_json)], env=env, capture_output=True, text=True, cwd=REPO)
        if run.returncode != 0 or not out_json.exists():
            print(f"  scorer failed on {set_name} (exit {run.returncode}):\n{run.stdout[-1500:]}{run.stderr[-800:]}")
            return None
        data = json.loads(out_json.read_text())
    return data.get("summary", data)


def print_scores(set_name: str, summary: dict) -> None:
    print(f"{set_name} set ({summary.get('ok')}/{summary.get('clips')} clips):")
    print(f"  {'method':<10} {'PSNR dB':>8} {'SSIM':>7} {'Chamfer':>8}")
    for name, (psnr, ssim, chamfer) in BASELINES[set_name].items():
        print(f"  {name:<10} {psnr:8.2f} {ssim:7.4f} {'-' if chamfer is None else f'{chamfer:8.2f}':>8}")
    chamfer = summary.get("mean_chamfer_px")
    print(f"  {'OURS flow':<10} {summary['mean_psnr']:8.2f} {summary['mean_ssim']:7.4f} "
          f"{'-' if chamfer is None or set_name == 'real' else f'{chamfer:8.2f}':>8}"
          f"   key copies {summary.get('keyframe_copy_fraction', 0):.0%}, "
          f"median {summary.get('median_sec_per_frame', float('nan')):.3f} s/frame incl. process start")
    best = max(b[0] for b in BASELINES[set_name].values())
    print(f"  PSNR over the best baseline: {summary['mean_psnr'] - best:+.2f} dB")


def speed() -> None:
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.flow import FlowEngine

    clip = EVAL / "data" / "public" / "p05"
    if clip.exists():
        a = cv2.cvtColor(cv2.imread(str(clip / "frame_0000.png")), cv2.COLOR_BGR2RGB)
        b = cv2.cvtColor(cv2.imread(str(clip / "frame_0008.png")), cv2.COLOR_BGR2RGB)
    else:  # synthetic stand-in: a shifted random cartoon-ish picture
        rng = np.random.default_rng(0)
        a = cv2.resize(rng.integers(0, 255, (20, 32, 3), dtype=np.uint8), (512, 320), interpolation=cv2.INTER_NEAREST)
        b = np.roll(a, 12, axis=1)
    engine = FlowEngine()
    times = [0.25, 0.5, 0.75]
    print(f"speed (3 in-betweens per segment, flow once per segment; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores):")
    for quality in ("best", "fast"):
        for w, h, goal in ((512, 320, 30.0), (1920, 1080, 4.0)):
            sa = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
            sb = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
            request = InterpolationRequest(sa, sb, times, params={"quality": quality})
            engine.interpolate(request)  # warm-up
            best_wall = best_cpu = float("inf")
            for _ in range(5 if w < 1000 else 3):
                wall, cpu = time.perf_counter(), time.process_time()
                engine.interpolate(request)
                best_wall = min(best_wall, time.perf_counter() - wall)
                best_cpu = min(best_cpu, time.process_time() - cpu)
            print(f"  {quality:<4} {w}x{h}: {len(times) / best_wall:6.1f} in-betweens/s (goal >= {goal:g}); "
                  f"{best_wall * 1000:.0f} ms wall, {best_cpu * 1000:.0f} ms CPU per segment")
            print("       " + _stage_split(sa, sb, quality, times))


def _stage_split(a: np.ndarray, b: np.ndarray, quality: str, times: list[float]) -> str:
    """Where a segment's time goes (best of 3): region seeds, the two DIS flows, the rest of the
    per-segment set-up (confidence, depth order), and each in-between (splat, fill, warp, blend)."""
    from tooncrafter_studio.engines import flow_warp

    spent: dict[str, float] = {}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    seeds, flows = flow_warp.SegmentInterpolator._seeds, flow_warp.dense_flows
    best: dict[str, float] = {}
    try:
        flow_warp.SegmentInterpolator._seeds = timed("seeds", seeds)
        flow_warp.dense_flows = timed("DIS", flows)
        for _ in range(3):
            spent.clear()
            start = time.perf_counter()
            segment = flow_warp.SegmentInterpolator(a, b, flow_warp.settings_for(quality))
            spent["set-up"] = time.perf_counter() - start - spent.get("seeds", 0.0) - spent.get("DIS", 0.0)
            start = time.perf_counter()
            for t in times:
                segment.frame(t)
            spent["per in-between"] = (time.perf_counter() - start) / len(times)
            best = {k: min(v, best.get(k, float("inf"))) for k, v in spent.items()}
    finally:
        flow_warp.SegmentInterpolator._seeds, flow_warp.dense_flows = seeds, flows
    return ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in best.items())


def run() -> None:
    speed()
    if not (EVAL / "run_eval.py").exists():
        print(f"scorer not found at {EVAL}; quality part skipped")
        return
    env = _scorer_env()
    if env is None:
        print("the scorer needs scipy and scikit-image (set EVAL_PYTHONPATH); quality part skipped")
        return
    print(GOALS)
    for set_name in ("public", "real"):
        summary = score(set_name, env)
        if summary:
            print_scores(set_name, summary)


if __name__ == "__main__":
    run()
