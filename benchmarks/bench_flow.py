"""The flow engine: quality on the shared eval sets beside every classical baseline, and speed.

Quality (in-process, the shared scorer's metrics from ../shared/eval/metrics.py; needs scipy and
scikit-image, else that part is skipped with a note): on the public and real sets, the engine in
"best" and "fast", the baselines hold, fade and flow re-run here from the scorer README's
description (tools/flow_train/evaluate.py), and the README's own table for all four baselines
(splat has no code in ../shared/eval, so its figures are the README's). Each of our rows is
followed by its difference (dB, SSIM, px) and ratio to every baseline.

Speed: in-process, a 3-in-between segment (flow once per segment) at 512x320 and 1920x1080,
best of a few runs, in in-betweens per second, for "best" and "fast"; the load average is
printed beside it because other work on a shared 2-core machine slows every figure down.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
if not EVAL.exists():  # a worktree under /work/wt/<name>
    EVAL = REPO.parents[1] / "shared" / "eval"
SPEED_GOALS = {("best", 512): 10.0, ("best", 1920): 4.0, ("fast", 512): 30.0}  # in-betweens/s
GOALS = "goals: public PSNR >= best baseline + 1.0 dB, Chamfer below every baseline; real PSNR and SSIM above every baseline; no key copies"


def readme_baselines() -> dict[str, dict[str, tuple[float, ...]]]:
    """The baseline tables of ../shared/eval/README.md: {set: {method: (PSNR, SSIM[, Chamfer])}}."""
    tables: dict[str, dict[str, tuple[float, ...]]] = {}
    current = None
    for line in (EVAL / "README.md").read_text().splitlines():
        head = re.match(r"\|\s*(public|real)\s*\|\s*PSNR", line)
        if head:
            current = head.group(1)
            tables[current] = {}
            continue
        row = re.match(r"\|\s*(\w+)\s*\|(.*)\|\s*$", line)
        if current and row and not set(row.group(2)) <= set("-:| "):
            values = [float(v) for v in row.group(2).split("|")]
            tables[current][row.group(1)] = tuple(values[:-1])  # the last column is seconds
        elif not line.startswith("|"):
            current = None
    return tables


def speed() -> None:
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.flow.engine import FlowEngine

    clip = EVAL / "data" / "public" / "p05"
    if clip.exists():
        a = cv2.cvtColor(cv2.imread(str(clip / "frame_0000.png")), cv2.COLOR_BGR2RGB)
        b = cv2.cvtColor(cv2.imread(str(clip / "frame_0008.png")), cv2.COLOR_BGR2RGB)
    else:  # synthetic stand-in: a shifted random cartoon-ish picture
        rng = np.random.default_rng(0)
        a = cv2.resize(rng.integers(0, 255, (20, 32, 3), dtype=np.uint8), (512, 320), interpolation=cv2.INTER_NEAREST)
        b = np.roll(a, 12, axis=1)
    times = [0.25, 0.5, 0.75]
    print(f"speed (3 in-betweens per segment, flow once per segment; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores):")
    from tooncrafter_studio.engines.flow.warp import settings_for

    hand_made = settings_for("best")
    hand_made.learned = False
    # "best-hand": best without the learned blend, to show what the network costs.
    for quality, engine in (("best", FlowEngine()), ("best-hand", FlowEngine(hand_made)), ("fast", FlowEngine())):
        for w, h in ((512, 320), (1920, 1080)):
            goal = SPEED_GOALS.get((quality, w))
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
            print(f"  {quality:<9} {w}x{h}: {len(times) / best_wall:6.1f} in-betweens/s {'' if goal is None else f'(goal >= {goal:g})'}; "
                  f"{best_wall * 1000:.0f} ms wall, {best_cpu * 1000:.0f} ms CPU per segment")
            if engine.settings is None:
                print("       " + _stage_split(sa, sb, quality, times))


def _stage_split(a: np.ndarray, b: np.ndarray, quality: str, times: list[float]) -> str:
    """Where a segment's time goes (best of 3): region seeds, the two DIS flows, the rest of the
    per-segment set-up (confidence, depth order), and each in-between (splat, fill, warp, blend)."""
    from tooncrafter_studio.engines.flow import warp as flow_warp

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


def _row(name: str, psnr: float, ssim: float, chamfer: float | None) -> str:
    return f"  {name:<22} {psnr:8.2f} {ssim:7.4f} {'-' if chamfer is None else f'{chamfer:7.2f}':>8}"


def quality() -> None:
    from tools.flow_train import evaluate

    try:
        evaluate.metrics_module()
    except ImportError as exc:
        print(f"the scorer's metrics need scipy and scikit-image ({exc}); quality part skipped")
        return
    readme = readme_baselines()
    print(GOALS)
    for set_name in ("public", "real"):
        clips = evaluate.clips_of(EVAL / "data" / set_name)
        chamfer = set_name == "public"  # the ink threshold does not fit the real frames
        rows: dict[str, tuple[float, float, float | None]] = {}
        for name, method in evaluate.BASELINES.items():
            summary = evaluate.score_set(clips, method, chamfer)["summary"]
            rows[f"{name} (re-run)"] = (summary["psnr"], summary["ssim"], summary.get("chamfer"))
        for name, values in readme.get(set_name, {}).items():
            rows[f"{name} (README)"] = (values[0], values[1], values[2] if chamfer and len(values) > 2 else None)
        ours = {}
        for quality_name in ("best", "fast"):
            summary = evaluate.score_set(clips, evaluate.engine_method(quality_name), chamfer)["summary"]
            ours[quality_name] = summary
        print(f"{set_name} set ({len(clips)} clips):")
        print(f"  {'method':<22} {'PSNR dB':>8} {'SSIM':>7} {'Chamfer':>8}")
        for name, (psnr, ssim, cham) in rows.items():
            print(_row(name, psnr, ssim, cham))
        for quality_name, summary in ours.items():
            print(_row(f"OURS flow {quality_name}", summary["psnr"], summary["ssim"], summary.get("chamfer"))
                  + f"   key copies {summary['copy']:.0%}, {summary['seconds']:.1f} s in all")
            for name, (psnr, ssim, cham) in rows.items():
                cham_text = "" if cham is None or "chamfer" not in summary else (
                    f", Chamfer {summary['chamfer'] - cham:+.2f} px (x{summary['chamfer'] / max(cham, 1e-6):.2f})")
                print(f"      vs {name:<16} PSNR {summary['psnr'] - psnr:+.2f} dB, SSIM {summary['ssim'] - ssim:+.4f} "
                      f"(x{summary['ssim'] / ssim:.3f}){cham_text}")
        best = max(p for p, _, _ in rows.values())
        print(f"  best PSNR over the best baseline: {ours['best']['psnr'] - best:+.2f} dB")


def run() -> None:
    speed()
    if not (EVAL / "metrics.py").exists():
        print(f"scorer not found at {EVAL}; quality part skipped")
        return
    quality()


if __name__ == "__main__":
    run()
