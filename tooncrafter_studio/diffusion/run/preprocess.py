"""Pixel preprocessing of the ToonCrafter scripts (spec §2.1, §12) and image/tensor conversions.

Images cross layers as numpy uint8 arrays (H, W, 3); the model takes float tensors in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...core.errors import InputError

MODEL_HEIGHT = 320
MODEL_WIDTH = 512


def _check_rgb_u8(image: np.ndarray, what: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise InputError(f"The {what} must be an RGB uint8 array of shape (H, W, 3), not {image.dtype} {image.shape}.")
    return image


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """torchvision `Resize(short_side)`: the shorter side becomes `short_side`, the longer one
    int(short_side · long / short) (truncated). Returns (new_height, new_width)."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def center_crop_offsets(size: int, crop: int) -> tuple[int, int]:
    """(pad_before, offset) along one axis for a center crop of `crop` from `size`: symmetric zero
    padding when the image is smaller (the extra pixel after), then the offset round((size-crop)/2)."""
    if size < crop:
        pad_before = (crop - size) // 2
        return pad_before, 0
    return 0, int(round((size - crop) / 2.0))


def resize_center_crop(image: np.ndarray, height: int = MODEL_HEIGHT, width: int = MODEL_WIDTH) -> np.ndarray:
    """The batch script's `Resize(min(height, width))` + `CenterCrop((height, width))` on the PIL image
    (PIL bilinear, antialiased when shrinking). Images narrower than the target aspect get black bars
    (trap 18). (H, W, 3) uint8 -> (height, width, 3) uint8."""
    image = _check_rgb_u8(image)
    new_h, new_w = resized_size(image.shape[0], image.shape[1], min(height, width))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    pad_y, top = center_crop_offsets(new_h, height)
    pad_x, left = center_crop_offsets(new_w, width)
    src = resized[top : top + min(height, new_h), left : left + min(width, new_w)]
    out[pad_y : pad_y + src.shape[0], pad_x : pad_x + src.shape[1]] = src
    return out


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) tensor in [-1, 1]: (u/255 - 0.5)/0.5 like ToTensor + Normalize(0.5, 0.5)."""
    image = _check_rgb_u8(image)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device).permute(2, 0, 1).float()
    return ((x / 255.0 - 0.5) / 0.5).to(dtype)


def tensor_to_images(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) or (3, H, W) float in about [-1, 1] -> (T, H, W, 3) or (H, W, 3) uint8, as the
    scripts save: clamp to [-1, 1], (x+1)/2·255, truncated (spec §12)."""
    x = video.detach().float().clamp(-1.0, 1.0)
    x = ((x + 1.0) / 2.0 * 255.0).to(torch.uint8)
    if x.ndim == 3:
        return x.permute(1, 2, 0).cpu().numpy()
    if x.ndim == 4:
        return x.permute(1, 2, 3, 0).cpu().numpy()
    raise ValueError(f"expected (3, H, W) or (3, T, H, W), got {tuple(video.shape)}")
