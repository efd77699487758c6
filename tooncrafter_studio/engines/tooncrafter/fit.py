"""Fit keyframes of any size and aspect into the model's frame, and map results back exactly.

The model works at 512x320 (width x height; both multiples of 64, which the UNet's three
down-samplings of the 8x smaller latent need). Two fits, the user's choice:

- "letterbox": scale the whole key to fit inside, pad the rest (bars); nothing is lost.
- "crop": scale to cover the frame and cut the overflow centrally; the model sees less of the
  key, and the parts it never saw are filled back from the keys when mapping back (see
  `FitPlan.from_model`).

A `FitPlan` is pure geometry: the scale and the placement of the source inside the model frame.
`to_model` and `from_model` use the same rectangle, so a point maps forward and back exactly and
an image makes the round trip up to resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...core.errors import InputError

MODEL_WIDTH = 512
MODEL_HEIGHT = 320
MODEL_MULTIPLE = 64  # pixels; the latent (1/8) must survive three 2x down-samplings
FIT_MODES = ("letterbox", "crop")


def check_model_size(width: int, height: int) -> None:
    """The model accepts frames whose sides are positive multiples of 64 pixels."""
    if width <= 0 or height <= 0 or width % MODEL_MULTIPLE or height % MODEL_MULTIPLE:
        raise InputError(
            f"The model frame must have sides that are multiples of {MODEL_MULTIPLE} pixels, not {width}x{height}."
        )


@dataclass(frozen=True)
class FitPlan:
    """Where a source frame of `src_w` x `src_h` lies inside the model frame of `dst_w` x `dst_h`.

    The source, scaled by `scale`, covers the model-frame rectangle whose top-left corner is
    (`offset_x`, `offset_y`) (negative for crop: the source sticks out) and whose size is
    `scaled_w` x `scaled_h`.
    """

    mode: str
    src_w: int
    src_h: int
    dst_w: int = MODEL_WIDTH
    dst_h: int = MODEL_HEIGHT
    pad_value: int = 0

    @property
    def scale(self) -> float:
        sx, sy = self.dst_w / self.src_w, self.dst_h / self.src_h
        return min(sx, sy) if self.mode == "letterbox" else max(sx, sy)

    @property
    def scaled_w(self) -> int:
        return max(1, round(self.src_w * self.scale))

    @property
    def scaled_h(self) -> int:
        return max(1, round(self.src_h * self.scale))

    @property
    def offset_x(self) -> int:
        return (self.dst_w - self.scaled_w) // 2

    @property
    def offset_y(self) -> int:
        return (self.dst_h - self.scaled_h) // 2

    # --- geometry -----------------------------------------------------------------------------
    def content_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the model frame that shows source pixels."""
        x0, y0 = max(0, self.offset_x), max(0, self.offset_y)
        x1 = min(self.dst_w, self.offset_x + self.scaled_w)
        y1 = min(self.dst_h, self.offset_y + self.scaled_h)
        return x0, y0, x1, y1

    def content_mask(self) -> np.ndarray:
        """Boolean dst_h x dst_w mask of the model-frame pixels that show the source (no bars)."""
        mask = np.zeros((self.dst_h, self.dst_w), dtype=bool)
        x0, y0, x1, y1 = self.content_box()
        mask[y0:y1, x0:x1] = True
        return mask

    def source_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the source that the model sees (all of it for letterbox)."""
        x0, y0, x1, y1 = self.content_box()
        sx = self.src_w / self.scaled_w
        sy = self.src_h / self.scaled_h
        return (round((x0 - self.offset_x) * sx), round((y0 - self.offset_y) * sy),
                round((x1 - self.offset_x) * sx), round((y1 - self.offset_y) * sy))

    def point_to_model(self, x: float, y: float) -> tuple[float, float]:
        """Continuous pixel coordinates (pixel centres at .5) from source to model frame."""
        return (x * self.scaled_w / self.src_w + self.offset_x, y * self.scaled_h / self.src_h + self.offset_y)

    def point_from_model(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.offset_x) * self.src_w / self.scaled_w, (y - self.offset_y) * self.src_h / self.scaled_h)

    # --- images -------------------------------------------------------------------------------
    def to_model(self, image: np.ndarray) -> np.ndarray:
        """A source frame (HxWxC) placed in the model frame (dst_h x dst_w x C), same dtype."""
        if image.shape[:2] != (self.src_h, self.src_w):
            raise InputError(
                f"Frame is {image.shape[1]}x{image.shape[0]}, the fit was planned for {self.src_w}x{self.src_h}."
            )
        scaled = _resize(image, self.scaled_w, self.scaled_h)
        out = np.full((self.dst_h, self.dst_w) + image.shape[2:], self.pad_value, dtype=image.dtype)
        x0, y0, x1, y1 = self.content_box()
        sx0, sy0 = x0 - self.offset_x, y0 - self.offset_y
        out[y0:y1, x0:x1] = scaled[sy0:sy0 + (y1 - y0), sx0:sx0 + (x1 - x0)]
        return out

    def from_model(self, frame: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
        """A model-frame image mapped back to the source resolution and aspect.

        Letterbox: the bars are dropped and the content is scaled back to src_w x src_h.
        Crop: the model saw only the central part; the rest is taken from `fill` (a source-size
        image, e.g. the nearer key) or, without one, left at `pad_value`.
        """
        if frame.shape[:2] != (self.dst_h, self.dst_w):
            raise InputError(f"Frame is {frame.shape[1]}x{frame.shape[0]}, the model frame is {self.dst_w}x{self.dst_h}.")
        x0, y0, x1, y1 = self.content_box()
        if self.mode == "letterbox":
            return _resize(frame[y0:y1, x0:x1], self.src_w, self.src_h)
        # Crop: undo the scale on the whole model frame, then paste it where it belongs in the source.
        sx0, sy0, sx1, sy1 = self.source_box()
        inner = _resize(frame, sx1 - sx0, sy1 - sy0)
        if fill is not None:
            out = fill.astype(frame.dtype, copy=True)
        else:
            out = np.full((self.src_h, self.src_w) + frame.shape[2:], self.pad_value, dtype=frame.dtype)
        out[sy0:sy1, sx0:sx1] = inner
        return out


def plan_fit(src_w: int, src_h: int, mode: str = "letterbox", dst_w: int = MODEL_WIDTH, dst_h: int = MODEL_HEIGHT,
             pad_value: int = 0) -> FitPlan:
    if mode not in FIT_MODES:
        raise InputError(f"Unknown fit '{mode}': use one of {', '.join(FIT_MODES)}.")
    if src_w <= 0 or src_h <= 0:
        raise InputError(f"A key frame of {src_w}x{src_h} pixels cannot be fitted.")
    check_model_size(dst_w, dst_h)
    return FitPlan(mode, int(src_w), int(src_h), int(dst_w), int(dst_h), int(pad_value))


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bicubic when enlarging; dtype kept."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.copy()
    shrinking = width * height < w * h
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    src = image
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        src = image.astype(np.float32)
    out = cv2.resize(src, (width, height), interpolation=interp)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out.astype(image.dtype, copy=False)
