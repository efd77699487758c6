"""Reading and writing single images: modes, bit depths, orientation and every kind of bad file."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from tooncrafter_studio.core.errors import MediaError
from tooncrafter_studio.media.imageio import (
    encode_png,
    probe_image,
    read_image,
    to_bit_depth,
    write_png,
)

RNG = np.random.default_rng(7)


def rgb8(h=6, w=9):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_round_trip_exact(tmp_path):
    a = rgb8()
    write_png(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.dtype == np.uint8 and b.shape == (6, 9, 3)
    np.testing.assert_array_equal(a, b)


def test_rgba_png_keeps_straight_alpha(tmp_path):
    a = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    a[0, 0] = (200, 100, 50, 0)  # colour under zero alpha must survive (straight, not premultiplied)
    write_png(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.shape == (5, 7, 4)
    np.testing.assert_array_equal(a, b)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGBA"


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_round_trip_exact(tmp_path, channels):
    a = RNG.integers(0, 65536, (4, 6, channels), dtype=np.uint16)
    write_png(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.dtype == np.uint16
    np.testing.assert_array_equal(a, b)
    info = probe_image(tmp_path / "a.png")
    assert info.bit_depth == 16 and info.has_alpha == (channels == 4)


def test_png_is_tagged_srgb(tmp_path):
    write_png(tmp_path / "a.png", rgb8())
    data = (tmp_path / "a.png").read_bytes()
    assert data[37:41] == b"sRGB"
    with Image.open(tmp_path / "a.png") as im:  # still a valid PNG
        im.load()


def test_grey_becomes_rgb(tmp_path):
    grey = RNG.integers(0, 256, (5, 4), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (5, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_grey_16_bit_becomes_rgb_16(tmp_path):
    grey = RNG.integers(0, 65536, (5, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    out = read_image(tmp_path / "g.png")
    assert out.dtype == np.uint16 and out.shape == (5, 4, 3)
    np.testing.assert_array_equal(out[:, :, 1], grey)


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (4, 3))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (3, 4, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (0, 255, 0)
    pal.save(tmp_path / "pt.png", transparency=0)
    out = read_image(tmp_path / "pt.png")
    assert out.shape == (3, 4, 4)
    assert out[0, 0, 3] == 0 and out[1, 1, 3] == 255
    assert probe_image(tmp_path / "pt.png").has_alpha


@pytest.mark.parametrize("ext,fmt", [(".jpg", "JPEG"), (".tif", "TIFF"), (".webp", "WEBP"), (".bmp", "BMP")])
def test_other_formats(tmp_path, ext, fmt):
    a = np.zeros((8, 10, 3), np.uint8)
    a[:, 5:] = (10, 200, 30)
    extra = {"WEBP": {"lossless": True}, "JPEG": {"quality": 98, "subsampling": 0}}.get(fmt, {})
    Image.fromarray(a).save(tmp_path / f"a{ext}", fmt, **extra)
    out = read_image(tmp_path / f"a{ext}")
    assert out.shape == (8, 10, 3)
    tol = 16 if fmt == "JPEG" else 0
    assert np.abs(out.astype(int) - a).max() <= tol
    info = probe_image(tmp_path / f"a{ext}")
    assert (info.width, info.height) == (10, 8)


def test_16_bit_tiff(tmp_path):
    a = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.tif"), a[:, :, ::-1])
    out = read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, a)


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = (255, 255, 255)  # top-left marker
    image = Image.fromarray(a)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    image.save(tmp_path / "o.png", exif=exif)
    out = read_image(tmp_path / "o.png")
    assert out.shape == (3, 2, 3)
    assert tuple(out[0, 1]) == (255, 255, 255)  # top-left goes to top-right


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    for fn in (read_image, probe_image):
        with pytest.raises(MediaError, match="empty.png.*zero bytes"):
            fn(tmp_path / "empty.png")


def test_non_image(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture at all")
    for fn in (read_image, probe_image):
        with pytest.raises(MediaError, match="notes.png"):
            fn(tmp_path / "notes.png")


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="nothere.png.*does not exist"):
        read_image(tmp_path / "nothere.png")


def test_truncated_png(tmp_path):
    write_png(tmp_path / "a.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.png.*truncated"):
        probe_image(tmp_path / "cut.png")
    with pytest.raises(MediaError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_truncated_jpeg(tmp_path):
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for fn in (read_image, probe_image):
        with pytest.raises(MediaError, match="cut.jpg"):
            fn(tmp_path / "cut.jpg")


def test_jpeg_with_trailing_data_still_reads(tmp_path):
    Image.fromarray(rgb8(16, 16)).save(tmp_path / "a.jpg")
    with open(tmp_path / "a.jpg", "ab") as handle:
        handle.write(b"\0" * 200)
    assert probe_image(tmp_path / "a.jpg").width == 16


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size over a tiny (invalid) body: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + chunk(b"IEND", b""))


def test_decompression_bomb_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_with_header(100_000, 100_000))
    for fn in (read_image, probe_image):
        with pytest.raises(MediaError, match="bomb.png.*too large"):
            fn(tmp_path / "bomb.png")


def test_pixel_limit_is_a_parameter(tmp_path):
    write_png(tmp_path / "a.png", rgb8(10, 10))
    with pytest.raises(MediaError, match="too large"):
        read_image(tmp_path / "a.png", max_pixels=99)
    assert read_image(tmp_path / "a.png", max_pixels=100).shape == (10, 10, 3)


def test_bit_depth_conversion_exact():
    a = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_bit_depth(to_bit_depth(a, 16), 8), a)
    assert to_bit_depth(a, 16)[255] == 65535


def test_encode_rejects_float():
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 3), np.float32))
