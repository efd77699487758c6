"""Reading and writing single images as numpy arrays.

Arrays are HxWx3 (RGB) or HxWx4 (RGBA, straight alpha), uint8 or uint16. Grey becomes RGB,
palette becomes RGB or RGBA (when it has transparency), EXIF orientation is applied.

Pillow decodes 8-bit images (all formats, palettes, EXIF); OpenCV decodes and encodes 16-bit ones
(Pillow reads 16-bit RGB PNGs as 8-bit) and encodes every PNG (it is fast and releases the GIL, so
export threads run in parallel). Every failure is a MediaError that names the file.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.errors import MediaError, StudioError
from ..core.fsio import atomic_write_bytes, check_regular_file, open_regular_file
from ..core.limits import MAX_IMAGE_FILE_BYTES, MAX_PIXELS, MAX_SIDE

# Frames above MAX_PIXELS are refused before decoding (decompression bombs); see core/limits.py.

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    """What a header says about an image, without decoding its pixels."""

    path: str
    format: str  # "PNG", "JPEG", ...
    width: int
    height: int
    has_alpha: bool
    bit_depth: int  # 8 or 16


def _name(path: str | os.PathLike) -> str:
    return str(path)


def _check_size(path: str | os.PathLike, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"{_name(path)} has an invalid size ({width}x{height}).")
    if width * height > max_pixels or width > MAX_SIDE or height > MAX_SIDE:
        raise MediaError(f"{_name(path)} is too large ({width}x{height}, {width * height / 1e6:.0f} Mpx; "
                         f"the limit is {max_pixels / 1e6:.0f} Mpx). It may be a decompression bomb.")


def _png_header_info(path: str | os.PathLike, head: bytes, tail: bytes, max_pixels: int,
                     orientation: int = 1) -> ImageInfo:
    """Parse the IHDR chunk and check the IEND chunk: no decoding, two small reads."""
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise MediaError(f"{_name(path)} is not a valid PNG file (no image header).")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise MediaError(f"{_name(path)} is a damaged PNG file (bad header checksum).")
    if not tail.endswith(_PNG_IEND):
        raise MediaError(f"{_name(path)} is truncated or damaged (the PNG file does not end properly).")
    _check_size(path, width, height, max_pixels)
    has_alpha = colour in (4, 6) or b"tRNS" in head
    if orientation >= 5:  # the picture is shown turned a quarter: as every viewer does
        width, height = height, width
    return ImageInfo(str(path), "PNG", width, height, has_alpha, 16 if depth == 16 else 8)


def _exif_orientation(data: bytes) -> int:
    try:
        exif = Image.Exif()
        exif.load(data)
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def png_orientation(handle) -> int:
    """The EXIF orientation of an open PNG file (1 when it has none): its eXIf chunk before the pixels.

    Walks the chunk headers up to the first IDAT (a few small reads); an eXIf chunk after the pixels
    is ignored, as browsers do, so that the header and the decoder always agree.
    """
    handle.seek(8)
    for _ in range(1000):
        header = handle.read(8)
        if len(header) < 8:
            return 1
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IDAT" or kind == b"IEND":
            return 1
        if kind == b"eXIf" and length <= 1 << 20:
            return _exif_orientation(handle.read(length))
        handle.seek(length + 4, os.SEEK_CUR)  # the body and its CRC
    return 1


def png_file_orientation(path: str | os.PathLike) -> int:
    try:
        with open(path, "rb") as handle:
            return png_orientation(handle)
    except OSError:
        return 1


def _is_16_bit(image: Image.Image) -> bool:
    if image.mode.startswith("I;16") or image.mode == "I":
        return True
    for tile in image.tile or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and "16" in rawmode:
            return True
    return False


def _pil_has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def _open_pil(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise MediaError(f"{_name(path)} does not exist.") from None
    except IsADirectoryError:
        raise MediaError(f"{_name(path)} is a folder, not an image.") from None
    except UnidentifiedImageError:
        raise MediaError(f"{_name(path)} is not an image that can be read "
                         "(PNG, JPEG, TIFF, WebP or BMP expected).") from None
    except Image.DecompressionBombError:
        raise MediaError(f"{_name(path)} is too large; it may be a decompression bomb.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{_name(path)} cannot be read: {exc}.") from None
    try:
        _check_size(path, image.width, image.height, max_pixels)
    except MediaError:
        image.close()
        raise
    return image


def probe_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Size, alpha and bit depth from the header. Cheap: reads a few hundred bytes for PNG.

    Also catches zero-byte, non-image and (for PNG and JPEG) truncated files.
    """
    fd, size = open_regular_file(path, MAX_IMAGE_FILE_BYTES, MediaError, "image")
    orientation = 1
    try:
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(4096)
            if head.startswith(PNG_SIGNATURE) or (size > 0 and head[:3] == b"\xff\xd8\xff"):
                handle.seek(max(0, size - 64))
                tail = handle.read(64)
            else:
                tail = b""
            if head.startswith(PNG_SIGNATURE):
                orientation = png_orientation(handle)
    except OSError as exc:
        raise MediaError(f"{_name(path)} cannot be read: {exc.strerror or exc}.") from None
    if size == 0:
        raise MediaError(f"{_name(path)} is empty (zero bytes).")
    if head.startswith(PNG_SIGNATURE):
        return _png_header_info(path, head, tail, max_pixels, orientation)
    if head[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in tail:
        # No end-of-image marker near the end: truncated, or trailing data. Decoding tells which.
        array = read_image(path, max_pixels)
        return ImageInfo(str(path), "JPEG", array.shape[1], array.shape[0], False, 8)
    with _open_pil(path, max_pixels) as image:
        width, height = image.width, image.height
        if _orientation(image, path) >= 5:
            width, height = height, width
        return ImageInfo(str(path), image.format or "", width, height, _pil_has_alpha(image),
                         16 if _is_16_bit(image) else 8)


def _orientation(image: Image.Image, path: str | os.PathLike) -> int:
    """EXIF orientation 1..8; for PNG only an eXIf chunk before the pixels counts (see png_orientation)."""
    if image.format == "PNG":
        return png_file_orientation(path)
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation 1..8 applied to an HxWxC array (the same transforms as ImageOps.exif_transpose)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return np.swapaxes(array, 0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return np.rot90(array, 1)[::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def _read_16_bit(path: str | os.PathLike, orientation: int) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode handles non-ASCII paths on Windows
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise MediaError(f"{_name(path)} is truncated or damaged and cannot be decoded.")
    if array.dtype != np.uint16:
        array = array.astype(np.uint16) * 257 if array.dtype == np.uint8 else array.astype(np.uint16)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 2:  # grey + alpha
        array = np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), array[:, :, 1:]], axis=2)
    elif array.shape[2] == 3:
        array = array[:, :, ::-1]
    else:
        array = array[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(_apply_orientation(array, orientation))


def plain_png_layout(path: str | os.PathLike) -> tuple[int, int, int, bool] | None:
    """(width, height, bit depth, has alpha) of an RGB or RGBA PNG that needs no conversion to be
    read as it is: no palette, no grey, no transparency key, no EXIF orientation. None otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if not (head.startswith(PNG_SIGNATURE) and len(head) >= 33 and head[12:16] == b"IHDR"):
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if depth not in (8, 16) or colour not in (2, 6) or b"tRNS" in head:
        return None
    if b"eXIf" in head or png_file_orientation(path) != 1:
        return None
    return width, height, depth, colour == 6


def _plain_png(path: str | os.PathLike) -> bool:
    """An 8-bit RGB or RGBA PNG that OpenCV decodes as it is (the fast path)."""
    layout = plain_png_layout(path)
    return layout is not None and layout[2] == 8


def _read_plain_png(path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    info = probe_image(path, max_pixels)  # size limit and truncation, before decoding
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.shape[:2] != (info.height, info.width) or array.dtype != np.uint8:
        raise MediaError(f"{_name(path)} is truncated or damaged and cannot be decoded.")
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to HxWx3 or HxWx4, uint8 or uint16 (see the module docstring)."""
    size = check_regular_file(path, MediaError, "image")
    if size == 0:
        raise MediaError(f"{_name(path)} is empty (zero bytes).")
    if size > MAX_IMAGE_FILE_BYTES:
        raise MediaError(f"{_name(path)} is too large ({size / 2**30:.1f} GiB; the limit for one image is "
                         f"{MAX_IMAGE_FILE_BYTES / 2**30:.0f} GiB).")
    if _plain_png(path):  # the common case, on the fast path: OpenCV decodes without holding the GIL
        return _read_plain_png(path, max_pixels)
    with _open_pil(path, max_pixels) as image:
        orientation = _orientation(image, path)
        if _is_16_bit(image):
            return _read_16_bit(path, orientation)
        try:
            image.load()
            has_alpha = _pil_has_alpha(image)
            array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
            return np.ascontiguousarray(_apply_orientation(array, orientation))
        except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
            raise MediaError(f"{_name(path)} is truncated or damaged and cannot be decoded ({exc}).") from None


def _srgb_chunk() -> bytes:
    body = b"sRGB" + b"\x00"  # rendering intent 0: perceptual
    return struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))


_SRGB_CHUNK = _srgb_chunk()


def encode_png(array: np.ndarray, compression: int = 1) -> bytes:
    """PNG bytes for an HxW, HxWx3 or HxWx4 uint8/uint16 array, tagged sRGB. Releases the GIL."""
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    elif array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 1):
        raise ValueError(f"cannot write an image of shape {array.shape}")
    # The "up" filter: as small as adaptive filtering on flat-coloured drawings, and 3-4x faster.
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array),
                               [cv2.IMWRITE_PNG_COMPRESSION, int(compression),
                                cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise ValueError("PNG encoding failed")
    data = encoded.tobytes()
    # The sRGB chunk goes right after IHDR (8-byte signature + 25-byte IHDR chunk).
    return data[:33] + _SRGB_CHUNK + data[33:]


def write_png(path: str | os.PathLike, array: np.ndarray, compression: int = 1,
              error: type[StudioError] = MediaError) -> None:
    """Write `array` as a PNG atomically (temporary file, fsync, rename). Alpha is straight."""
    atomic_write_bytes(Path(path), encode_png(array, compression), error=error)


def png_bytes_to_array(data: bytes) -> np.ndarray:
    """Decode PNG bytes (used by tests and the thumbnail cache)."""
    buffer = io.BytesIO(data)
    with Image.open(buffer) as image:
        if _is_16_bit(image):
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if array.ndim == 3:
                array = array[:, :, ::-1] if array.shape[2] == 3 else array[:, :, [2, 1, 0, 3]]
            return array
        return np.asarray(image.convert("RGBA" if _pil_has_alpha(image) else "RGB")).copy()


def to_bit_depth(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """Convert between 8 and 16 bits exactly (x257 up, rounded /257 down)."""
    if bit_depth == 16 and array.dtype == np.uint8:
        return array.astype(np.uint16) * 257
    if bit_depth == 8 and array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return array


def to_channels(array: np.ndarray, alpha: bool) -> np.ndarray:
    """RGB <-> RGBA: an opaque alpha is added, or alpha is dropped."""
    if alpha and array.shape[2] == 3:
        opaque = np.iinfo(array.dtype).max
        return np.concatenate([array, np.full(array.shape[:2] + (1,), opaque, array.dtype)], axis=2)
    if not alpha and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    return array
