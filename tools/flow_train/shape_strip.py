"""The README's pictures of the shape engine: the sample shot's strip and the worst held-out case.

    python -m tools.flow_train.shape_strip [--out docs]

docs/shape-engine-sample-shot.png: for each segment of the sample shot (keys 1-9, 9-17), the keys
and the in-betweens at 1/4, 1/2, 3/4 from the drawn truth, from the engine (shapes), and from
dense flow alone (the engine before shapes).
docs/shape-engine-worst-case.png: the held-out in-between (tools/flow_train/heldout.py, the seeds
the benchmark uses) where the engine scores the lowest PSNR: keys, truth, ours.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tooncrafter_studio" / "resources" / "sample_shot" / "frames"


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 9 * len(text) + 10), 22), (255, 255, 255), -1)
    cv2.putText(out, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _read(frame: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLE / f"ball.{frame:04d}.png")), cv2.COLOR_BGR2RGB)


def sample_strip() -> np.ndarray:
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.flow.engine import FlowEngine

    rows = []
    for k0, k1 in ((1, 9), (9, 17)):
        a, b = _read(k0), _read(k1)
        request = InterpolationRequest(a, b, [0.25, 0.5, 0.75])
        ours = FlowEngine().interpolate(request)
        flow = FlowEngine(use_shapes=False).interpolate(request).frames
        truth = [_read(f) for f in (k0 + 2, k0 + 4, k0 + 6)]
        for name, frames in (("truth", truth), ("OURS (shapes)", ours.frames), ("dense flow alone", flow)):
            cells = [_label(a, f"key {k0}")]
            cells += [_label(f, f"{name} t={t}") for f, t in zip(frames, (0.25, 0.5, 0.75))]
            cells.append(_label(b, f"key {k1}"))
            rows.append(np.hstack([cv2.resize(c, (256, 160), interpolation=cv2.INTER_AREA) for c in cells]))
    return np.vstack(rows)


def worst_case() -> tuple[np.ndarray, str]:
    from benchmarks.bench_shapes import HELD_OUT_SEEDS
    from tools.flow_train import evaluate, heldout
    from tooncrafter_studio.engines.base import InterpolationRequest
    from tooncrafter_studio.engines.flow.engine import FlowEngine

    metrics = evaluate.metrics_module()
    worst = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = heldout.write_set(Path(tmp) / "held", HELD_OUT_SEEDS)
        for clip_id, frames in evaluate.clips_of(folder):
            k = len(frames) - 1
            result = FlowEngine().interpolate(InterpolationRequest(frames[0], frames[-1], [i / k for i in range(1, k)]))
            for i, pred in enumerate(result.frames, 1):
                psnr = metrics.psnr(pred, frames[i])
                if worst is None or psnr < worst[0]:
                    worst = (psnr, clip_id, i, k, frames[0], frames[i], pred, frames[-1], result.info)
    psnr, clip_id, i, k, a, truth, pred, b, info = worst
    cells = [_label(a, "key"), _label(truth, f"truth t={i}/{k}"), _label(pred, f"OURS {psnr:.1f} dB"), _label(b, "key")]
    note = f"{clip_id} in-between {i}/{k}: {psnr:.2f} dB, confidence {min(info['confidence']):.2f}, {info['method']}"
    return np.hstack(cells), note


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    cv2.imwrite(str(out / "shape-engine-sample-shot.png"), cv2.cvtColor(sample_strip(), cv2.COLOR_RGB2BGR))
    image, note = worst_case()
    cv2.imwrite(str(out / "shape-engine-worst-case.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"wrote {out / 'shape-engine-sample-shot.png'} and {out / 'shape-engine-worst-case.png'} ({note})")


if __name__ == "__main__":
    main()
