"""Score the flow engine in-process on clip folders (the shared scorer's metrics, no CLI start-up).

A clip folder holds frame_0000.png .. frame_K.png (frames 0 and K are the keys); a set folder
holds clip folders and a manifest.json (the shared eval's layout; our generator writes the same).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO.parent / "shared" / "eval"
if not EVAL.exists():  # a worktree under /work/wt/<name>
    EVAL = REPO.parents[1] / "shared" / "eval"


def metrics_module():
    if str(EVAL) not in sys.path:
        sys.path.insert(0, str(EVAL))
    import metrics  # type: ignore[import-not-found]

    return metrics


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def clips_of(set_dir: Path) -> list[tuple[str, list[np.ndarray]]]:
    manifest = json.loads((set_dir / "manifest.json").read_text())
    out = []
    for clip in manifest["clips"]:
        frames = [load_rgb(set_dir / clip["id"] / name) for name in clip["frames"]]
        out.append((clip["id"], frames))
    return out


Method = Callable[[np.ndarray, np.ndarray, list[float]], list[np.ndarray]]


def hold(a, b, times):
    return [a.copy() if t < 0.5 else b.copy() for t in times]


def fade(a, b, times):
    return [cv2.addWeighted(a, 1 - t, b, t, 0) for t in times]


def classical_flow(a, b, times):
    """The scorer README's "flow" baseline as described there: OpenCV DIS both ways, backward
    warp with time-scaled flows, consistency-masked blend (our re-implementation)."""
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    f01, f10 = dis.calc(ga, gb, None), dis.calc(gb, ga, None)
    h, w = ga.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def fb_ok(f, g):
        back = cv2.remap(g, xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return (np.linalg.norm(f + back, axis=2) < 2.0).astype(np.float32)

    ok0, ok1 = fb_ok(f01, f10), fb_ok(f10, f01)
    out = []
    for t in times:
        # The time-t pixel x came from about x + t * F10(x) in a and x + (1 - t) * F01(x) in b.
        m0x, m0y = xs + t * f10[..., 0], ys + t * f10[..., 1]
        m1x, m1y = xs + (1 - t) * f01[..., 0], ys + (1 - t) * f01[..., 1]
        w0 = cv2.remap(a, m0x, m0y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        w1 = cv2.remap(b, m1x, m1y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        c0 = (1 - t) * (0.1 + cv2.remap(ok0, m0x, m0y, cv2.INTER_LINEAR))
        c1 = t * (0.1 + cv2.remap(ok1, m1x, m1y, cv2.INTER_LINEAR))
        share = (c0 / (c0 + c1))[..., None]
        out.append(np.clip(w0 * share + w1 * (1 - share) + 0.5, 0, 255).astype(np.uint8))
    return out


BASELINES: dict[str, Method] = {"hold": hold, "fade": fade, "flow": classical_flow}


def engine_method(quality: str = "best", seed: int | None = None, **overrides) -> Method:
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.flow.engine import FlowEngine
    from tooncrafter_studio.engines.flow.warp import settings_for

    settings = settings_for(quality)
    for key, value in overrides.items():
        setattr(settings, key, value)
    engine = FlowEngine(settings)

    def run(a, b, times):
        return engine.interpolate(InterpolationRequest(a, b, times, seed=seed)).frames

    return run


def score_set(clips, method: Method, chamfer: bool = True) -> dict:
    metrics = metrics_module()
    rows = []
    seconds = 0.0
    for clip_id, frames in clips:
        k = len(frames) - 1
        times = [i / k for i in range(1, k)]
        start = time.perf_counter()
        preds = method(frames[0], frames[-1], times)
        seconds += time.perf_counter() - start
        per = []
        for i, pred in enumerate(preds, 1):
            gt = frames[i]
            row = {"psnr": metrics.psnr(pred, gt), "ssim": metrics.ssim(pred, gt),
                   "copy": metrics.is_keyframe_copy(pred, frames[0], frames[-1])}
            if chamfer:
                row["chamfer"] = metrics.chamfer(pred, gt)["chamfer_px"]
            per.append(row)
        rows.append({"clip": clip_id, **{key: float(np.mean([r[key] for r in per])) for key in per[0]}})
    summary = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "clip"}
    summary["seconds"] = seconds
    return {"summary": summary, "clips": rows}


def fmt(summary: dict) -> str:
    chamfer = f" Chamfer {summary['chamfer']:.2f}" if "chamfer" in summary else ""
    return (f"PSNR {summary['psnr']:.2f} SSIM {summary['ssim']:.4f}{chamfer} copies {summary['copy']:.0%} "
            f"({summary['seconds']:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="+", help="set folders (or 'public' / 'real')")
    ap.add_argument("--quality", default="best")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--per-clip", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="setting override NAME=VALUE")
    a = ap.parse_args(argv)
    overrides = {}
    for item in a.set:
        name, value = item.split("=", 1)
        overrides[name] = json.loads(value)
    for name in a.sets:
        set_dir = EVAL / "data" / name if name in ("public", "real") else Path(name)
        clips = clips_of(set_dir)
        chamfer = name != "real"
        methods = {"ours": engine_method(a.quality, a.seed, **overrides)}
        if a.baselines:
            methods = {**BASELINES, **methods}
        for label, method in methods.items():
            result = score_set(clips, method, chamfer)
            print(f"{set_dir.name:<10} {label:<6} {fmt(result['summary'])}", flush=True)
            if a.per_clip:
                for row in result["clips"]:
                    print("    " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in row.items()))


if __name__ == "__main__":
    main()
