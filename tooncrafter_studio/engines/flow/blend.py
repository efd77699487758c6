"""A small learned blend for the flow engine: which warped key to trust where, plus a residual.

The hand-made blend (time, confidence, "decisive" where the warps disagree) chooses well where
one key's flow is clearly wrong, but an oracle that picks the better warp per pixel would gain
~1.6 dB on the cartoon sets. A tiny convolutional network (13 761 weights) looks at both
warps, their confidences, the hand-made share and the motion around each pixel, at half the flow
resolution, and predicts a correction to the share's logit; it is upsampled and applied at full
resolution, so lines stay as crisp as the bilinear warps, and nothing is painted that neither
warp shows.

Trained on procedurally generated cartoon motion only (tools/flow_train); shipped as an ONNX
graph and run by OpenCV's DNN module, so inference needs neither torch nor onnx.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources

import cv2
import numpy as np

log = logging.getLogger(__name__)

MODEL_FILE = "blend.onnx"
# The features, in order (tools/flow_train reads this list; changing it means retraining):
FEATURES = ("warp0 rgb", "warp1 rgb", "disagreement", "confidence0", "confidence1", "share0",
            "time", "motion0", "motion1")
CHANNELS = 13
MOTION_SCALE = 1.0 / 32.0  # flow magnitude (flow-resolution pixels) to feature units


def features(warp0: np.ndarray, warp1: np.ndarray, conf0: np.ndarray, conf1: np.ndarray,
             share0: np.ndarray, t: float, back0: np.ndarray, back1: np.ndarray,
             size: tuple[int, int]) -> np.ndarray:
    """1xCxHxW float32 network input at `size` (w, h).

    warp0/warp1: full-resolution uint8 RGB warps; share0: full-resolution hand-made share of
    warp0; conf*/back*: flow-resolution confidences and back flows.
    """
    w, h = size

    def small(image, interpolation=cv2.INTER_AREA):
        return image if image.shape[1] == w and image.shape[0] == h else cv2.resize(image, (w, h), interpolation=interpolation)

    a = small(warp0).astype(np.float32) * np.float32(1 / 255)
    b = small(warp1).astype(np.float32) * np.float32(1 / 255)
    planes = [a[..., 0], a[..., 1], a[..., 2], b[..., 0], b[..., 1], b[..., 2],
              np.abs(a - b).mean(axis=2), small(conf0), small(conf1), small(share0.astype(np.float32)),
              np.full((h, w), t, np.float32),
              small(cv2.magnitude(*cv2.split(back0))) * np.float32(MOTION_SCALE / max(t, 1e-3)),
              small(cv2.magnitude(*cv2.split(back1))) * np.float32(MOTION_SCALE / max(1.0 - t, 1e-3))]
    return np.ascontiguousarray(np.stack(planes)[None], dtype=np.float32)


def net_size(flow_w: int, flow_h: int) -> tuple[int, int]:
    """The network runs at half the flow resolution (its cost is the engine's budget)."""
    return max(8, (flow_w + 1) // 2), max(8, (flow_h + 1) // 2)


class LearnedBlend:
    """The shipped network; `apply` returns the new share of warp0 (full resolution)."""

    def __init__(self, onnx_bytes: bytes) -> None:
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(onnx_bytes, np.uint8))

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Cxhxw, channel 0 the share-logit correction (older trainings had three more, a colour
        residual, that cost 0.4 dB on textured frames and are ignored). The network halves the picture twice:
        the input is padded (edge values) to a multiple of 4 and the output cropped back."""
        h, w = inputs.shape[2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            inputs = np.pad(inputs, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        self.net.setInput(inputs)
        return self.net.forward()[0, :, :h, :w]

    def apply(self, inputs: np.ndarray, share0: np.ndarray, full: tuple[int, int]) -> np.ndarray:
        """The new full-resolution share of warp0: the hand-made one's logit plus the network's
        correction (upsampled). Only the share changes, so where both warps agree (still parts,
        identical keys) the frame is exactly what the hand-made blend gives."""
        delta = cv2.resize(self.predict(inputs)[0], full, interpolation=cv2.INTER_LINEAR)
        # sigmoid(logit(s) + d) = s e^d / (s e^d + 1 - s): one exp per pixel, no log.
        share = np.clip(share0, 1e-4, 1.0 - 1e-4).astype(np.float32)
        gain = cv2.exp(np.minimum(delta, 30.0))
        lifted = share * gain
        return lifted / (lifted + (1.0 - share))


@functools.lru_cache(maxsize=1)
def shipped() -> LearnedBlend | None:
    """The network shipped with the package, or None when it is missing or OpenCV cannot read it."""
    try:
        data = resources.files("tooncrafter_studio.engines.flow").joinpath(MODEL_FILE).read_bytes()
    except (FileNotFoundError, OSError):
        return None
    try:
        return LearnedBlend(data)
    except cv2.error as exc:  # an OpenCV build without DNN, or a damaged file
        log.warning("The flow engine's learned blend could not be loaded (%s); using the hand-made blend.", exc)
        return None
