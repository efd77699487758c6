"""A stand-in for the ToonCrafter pipeline: draws a red square moving between the anchors' squares."""

from __future__ import annotations

import numpy as np

from tooncrafter_studio.core.errors import Cancelled

H, W = 128, 192  # a small model frame keeps these tests fast (the engine asks `model_size`)
SIZE = 24


def square_x(img: np.ndarray) -> float:
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
    cols = np.nonzero(red.any(axis=0))[0]
    return float(cols.mean()) if cols.size else float("nan")


def draw(x_centre: float, h: int = H, w: int = W, tint: int = 0) -> np.ndarray:
    img = np.full((h, w, 3), 235, np.uint8)
    img[: h // 3] = (120 + tint, 170, 220)  # sky, so colour statistics have something to work on
    x0 = int(round(x_centre - SIZE / 2))
    img[h // 2 - SIZE // 2: h // 2 + SIZE // 2, max(0, x0): max(0, x0 + SIZE)] = (210, 30, 30)
    return img


class FakePipeline:
    model_size = (H, W)

    def __init__(self, fail_in_modes=(), drift=0):
        self.calls = []
        self.steps_run = 0
        self.drift = drift  # a tint added to in-betweens (colour drift to be corrected)

    def __call__(self, start, end, params, *, callback, cancel):
        prompt, steps, seed = params.prompt, params.steps, params.seed
        assert start.shape == (H, W, 3) and start.dtype == np.uint8
        self.calls.append({"seed": seed, "prompt": prompt, "steps": steps, "xa": square_x(start), "xb": square_x(end)})
        for step in range(1, steps + 1):
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            self.steps_run += 1
            callback(step, steps)
        xa, xb = square_x(start), square_x(end)
        frames = [start.copy()]
        for k in range(1, 15):
            frames.append(draw(xa + (xb - xa) * k / 15, tint=self.drift))
        frames.append(end.copy())
        return np.stack(frames)
