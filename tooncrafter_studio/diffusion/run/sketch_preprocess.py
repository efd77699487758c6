"""Sketch images -> hints for the sketch encoder (sketch-spec §1.6 "Preprocessing").

A hint is ink, not paper: the image's grey value (OpenCV's integer BT.601 weights) is inverted and
divided by 255, so black lines become 1 and a white page 0 — the "empty image" of frames without
a sketch. Transparent images are composited over white first (a transparent page stored as
(0, 0, 0, 0) would otherwise become solid ink). `fork_hint` then applies the fork's geometry: the
keys' `Resize(short side)` + `CenterCrop` on the tensor, antialiased, zero padding (blank margins),
crop offsets rounded half to even. The numpy parts import no torch; only the resize does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.errors import InputError

# cv2.cvtColor(BGR2GRAY) in integers: Y = (3735·B + 19235·G + 9798·R + 16384) >> 15.
_GREY_R, _GREY_G, _GREY_B, _GREY_SHIFT = 9798, 19235, 3735, 15


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An 8-bit (H, W, 3) RGB copy of a grey, RGB or RGBA image (8 or 16 bit); alpha over white."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4) or min(image.shape[:2]) < 1:
        raise InputError(f"A sketch must be a grey, RGB or RGBA image, not an array of shape {image.shape}.")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"A sketch must be an 8- or 16-bit image, not {image.dtype}.")
    channels = image.shape[2]
    colour = np.repeat(image[:, :, :1], 3, axis=2) if channels in (1, 2) else image[:, :, :3]
    if channels in (2, 4):
        return over_white(colour, image[:, :, -1])
    return np.ascontiguousarray(colour)


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """round(rgb·a + 255·(1 − a)), a = alpha / 255: the page behind a transparent sketch is white."""
    a = alpha.astype(np.float64)[:, :, None] / 255.0
    return np.rint(rgb.astype(np.float64) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def grey_u8(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's grey conversion of an (H, W, 3) uint8 RGB image, bit for bit."""
    r, g, b = (rgb[:, :, i].astype(np.uint32) for i in range(3))
    return ((_GREY_B * b + _GREY_G * g + _GREY_R * r + (1 << (_GREY_SHIFT - 1))) >> _GREY_SHIFT).astype(np.uint8)


def ink(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 ink in [0, 1] of any sketch image: 1 − grey / 255 (lines 1, white page 0)."""
    return (255 - grey_u8(to_rgb8(image))).astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class HintGeometry:
    resized_hw: tuple[int, int]
    pad_ltrb: tuple[int, int, int, int]
    crop_top_left: tuple[int, int]


def fork_geometry(height: int, width: int, resolution: tuple[int, int]) -> HintGeometry:
    """torchvision's Resize(resolution[0]) (short side; the long side truncated) and
    CenterCrop(resolution) (zero padding split floor/rest, offsets rounded half to even)."""
    out_h, out_w = resolution
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = out_h, int(out_h * long / short)
    rh, rw = (new_short, new_long) if height <= width else (new_long, new_short)
    pad_w, pad_h = max(0, out_w - rw), max(0, out_h - rh)
    pad = (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2)
    ph, pw = rh + pad_h, rw + pad_w
    top, left = int(round((ph - out_h) / 2.0)), int(round((pw - out_w) / 2.0))
    return HintGeometry((rh, rw), pad, (top, left))


def resize_plane(plane: np.ndarray, height: int, width: int, antialias: bool = True) -> np.ndarray:
    """Bilinear resize of an (H, W) float32 plane as torchvision resizes tensors (align_corners off)."""
    if plane.shape == (height, width):
        return plane.astype(np.float32, copy=True)
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None]
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
    return out[0, 0].numpy()


def fork_hint(image: np.ndarray, resolution: tuple[int, int] = (320, 512), antialias: bool = True) -> np.ndarray:
    """The fork's hint of one sketch: (1, H, W) float32 at `resolution` (height, width)."""
    plane = ink(image)
    geometry = fork_geometry(*plane.shape, resolution)
    plane = resize_plane(plane, *geometry.resized_hw, antialias=antialias)
    left, top, right, bottom = geometry.pad_ltrb
    plane = np.pad(plane, ((top, bottom), (left, right)))
    y, x = geometry.crop_top_left
    return np.ascontiguousarray(plane[y : y + resolution[0], x : x + resolution[1]])[None]


def blank_hint(resolution: tuple[int, int]) -> np.ndarray:
    """The hint of a frame without a sketch: a white page, i.e. no ink (the encoder still runs)."""
    return np.zeros((1, *resolution), dtype=np.float32)
