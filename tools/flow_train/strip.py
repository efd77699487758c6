"""The README's picture of the flow engine: keys, in-betweens and ground truth, a good and a bad case.

    PYTHONPATH=. python -m tools.flow_train.strip [--out docs/flow-engine-strip.png]

Per case two rows: start key, the engine's in-betweens, end key; below them the true frames
(keys again at the ends), each in-between labelled with its PSNR. Clips from the shared public set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from .evaluate import EVAL, REPO, clips_of, engine_method, metrics_module

CASES = (("p02", "good: small motion, shapes matched"), ("p03", "bad: large motion on arcs, a pan, overlaps"))
THUMB_W = 256


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _thumb(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (THUMB_W, round(h * THUMB_W / w)), interpolation=cv2.INTER_AREA)


def make_strip(cases=CASES) -> np.ndarray:
    metrics = metrics_module()
    clips = dict(clips_of(EVAL / "data" / "public"))
    method = engine_method("best")
    blocks = []
    for clip_id, title in cases:
        frames = clips[clip_id]
        k = len(frames) - 1
        preds = method(frames[0], frames[-1], [i / k for i in range(1, k)])
        top = [_label(_thumb(frames[0]), "start key")]
        bottom = [_label(_thumb(frames[0]), "truth")]
        for i, pred in enumerate(preds, 1):
            top.append(_label(_thumb(pred), f"ours t={i}/{k} {metrics.psnr(pred, frames[i]):.1f} dB"))
            bottom.append(_label(_thumb(frames[i]), f"truth t={i}/{k}"))
        top.append(_label(_thumb(frames[-1]), "end key"))
        bottom.append(_label(_thumb(frames[-1]), "truth"))
        width = len(top) * THUMB_W
        banner = np.full((24, width, 3), 255, np.uint8)
        cv2.putText(banner, f"{clip_id} - {title}", (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        blocks.append((banner, np.hstack(top), np.hstack(bottom)))
    width = max(b[1].shape[1] for b in blocks)

    def pad(img):
        return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)

    return np.vstack([pad(part) for block in blocks for part in block])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "flow-engine-strip.png")
    a = ap.parse_args(argv)
    cv2.imwrite(str(a.out), cv2.cvtColor(make_strip(), cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
