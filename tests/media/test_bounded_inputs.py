"""Hostile media: bounds checked before allocating, odd files skipped or refused, EXIF orientation."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from tooncrafter_studio.core.errors import MediaError
from tooncrafter_studio.media import import_source, read_image, write_png
from tooncrafter_studio.media.imageio import probe_image
from tooncrafter_studio.media.importer import read_frame
from tooncrafter_studio.media.sequence import list_sequence
from tooncrafter_studio.media.video import probe_video


def _frame(value: int = 200) -> np.ndarray:
    image = np.full((12, 16, 3), value, np.uint8)
    image[2:5, 3:9] = (10, 20, 30)
    return image


def test_a_huge_jump_in_frame_numbers_is_refused_before_listing_gaps(tmp_path):
    write_png(tmp_path / "shot.0001.png", _frame())
    write_png(tmp_path / "shot.9999999999.png", _frame())
    with pytest.raises(MediaError, match=r"jump from 1 to 9999999999.*limit of 10,000"):
        list_sequence(tmp_path)


def test_a_small_gap_is_still_listed(tmp_path):
    for n in (1, 2, 5):
        write_png(tmp_path / f"shot.{n:04d}.png", _frame())
    assert list_sequence(tmp_path).gaps == [3, 4]


@pytest.mark.parametrize("pattern", ["shot.%099999999999d.png", "shot.$F99999999999.png", "shot.%011d.png",
                                     "shot." + "#" * 40 + ".png"])
def test_absurd_pattern_padding_is_one_clear_error(tmp_path, pattern):
    write_png(tmp_path / "shot.0001.png", _frame())
    with pytest.raises(MediaError, match="more than 10 digits"):
        list_sequence(tmp_path / pattern)


def test_looping_symlink_is_skipped_with_a_warning(tmp_path):
    for n in (1, 2, 3):
        write_png(tmp_path / f"shot.{n:04d}.png", _frame())
    os.symlink("shot.0004.png", tmp_path / "shot.0004.png")
    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    for given in (tmp_path, tmp_path / "shot.0001.png", tmp_path / "shot.####.png"):
        result = import_source(given)
        assert result.source.frame_count == 3, given
        assert any("shot.0004.png is a link that leads to itself" in w for w in result.warnings), result.warnings


def test_fifo_in_a_sequence_is_skipped_and_a_fifo_image_refused(tmp_path):
    for n in (1, 2):
        write_png(tmp_path / f"shot.{n:04d}.png", _frame())
    os.mkfifo(tmp_path / "shot.0003.png")
    result = import_source(tmp_path / "shot.0001.png")
    assert result.source.frame_count == 2 and any("pipe" in w for w in result.warnings)
    with pytest.raises(MediaError, match="pipe"):
        probe_image(tmp_path / "shot.0003.png")
    with pytest.raises(MediaError, match="not a regular"):
        read_image(tmp_path / "shot.0003.png")


def test_image_linked_to_dev_zero_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.png")
    with pytest.raises(MediaError, match="device"):
        probe_image(tmp_path / "zero.png")
    with pytest.raises(MediaError):
        read_image(tmp_path / "zero.png")


def _gif_claiming(width: int, height: int) -> bytes:
    gif = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    return gif + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b"


def test_tiny_gif_claiming_16000_square_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.gif"
    path.write_bytes(_gif_claiming(16000, 16000))
    with pytest.raises(MediaError, match="16000x16000, above the limit of 80 Mpx"):
        probe_video(path)
    with pytest.raises(MediaError, match="above the limit"):
        import_source(path)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _drawing() -> np.ndarray:
    """64 wide, 48 high, asymmetric so that every rotation and flip is told apart."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :, 0] = np.arange(64, dtype=np.uint8)[None, :] * 3
    image[:, :, 1] = np.arange(48, dtype=np.uint8)[:, None] * 5
    image[:8, :8] = 255
    return image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [3, 6, 8, 5])
def test_exif_orientation_is_applied_in_the_header_and_the_pixels(tmp_path, fmt, orientation):
    path = tmp_path / f"photo.0001.{'jpg' if fmt == 'JPEG' else 'png'}"
    Image.fromarray(_drawing()).save(path, fmt, exif=_exif(orientation), **({"quality": 95} if fmt == "JPEG" else {}))
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    info = probe_image(path)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    pixels = read_image(path)
    assert pixels.shape == expected.shape
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= (0 if fmt == "PNG" else 2)
    source = import_source(path).source  # import and every later read agree
    assert (source.width, source.height) == (expected.shape[1], expected.shape[0])
    assert read_frame(source, 0).shape == expected.shape
