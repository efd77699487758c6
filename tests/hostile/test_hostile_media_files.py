"""Hostile images and videos given to `new` and `interpolate`: refused in one line, nothing created."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from hostile_kit import cli, drawing, make_footage, refused

from tooncrafter_studio.media import write_png
from tooncrafter_studio.media.imageio import encode_png


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        _chunk(b"IEND", b"")


def _bmp_claiming(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(header) + 12, 0, 0, 14 + len(header)) + header + b"\0" * 12


def _gif_claiming(width: int, height: int) -> bytes:
    gif = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    return gif + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b"


GOOD = encode_png(drawing(0))

# name -> (bytes, or a callable making the entry; words the one-line error must contain)
BAD_IMAGES = {
    "empty": (b"", "empty"),
    "truncated": (GOOD[: len(GOOD) // 2], "truncated"),
    "bad-crc": (GOOD[:29] + b"\0\0\0\0" + GOOD[33:], "checksum"),
    "text": (b"these are not the pixels you are looking for\n", "not an image"),
    "random": (bytes(range(256)) * 8, "not an image"),
    "png-bomb": (_png_claiming(100_000, 100_000), "too large"),
    "png-zero-size": (_png_claiming(0, 5), "invalid size"),
    "bmp-bomb": (_bmp_claiming(60_000, 60_000), "too large"),
    "jpeg-truncated": (b"\xff\xd8\xff\xe0" + b"\0" * 40, "not an image"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_in_a_sequence(tmp_path, capsys, case):
    data, words = BAD_IMAGES[case]
    footage = make_footage(tmp_path / "footage", count=3)
    ext = ".bmp" if case.startswith("bmp") else ".jpg" if case.startswith("jpeg") else ".png"
    if ext != ".png":
        for path in footage.iterdir():
            path.unlink()
        for i in (1, 2):
            (footage / f"walk.{i:04d}{ext}").write_bytes(data if i == 2 else _valid(ext))
        bad = footage / f"walk.0002{ext}"
    else:
        bad = footage / "walk.0002.png"
        bad.write_bytes(data)
    err = refused(capsys, ["new", tmp_path / "shot", "--source", footage, "-q"], 2, (str(bad), words),
                  tmp_path)
    assert "shot" not in os.listdir(tmp_path), err


def _valid(ext: str) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(drawing(1)).save(buffer, {"bmp": "BMP", "jpg": "JPEG"}[ext[1:]])
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["fifo", "dev-zero", "loop", "folder", "dangling"])
def test_odd_entries_given_as_a_key(tmp_path, capsys, case):
    good = tmp_path / "a.png"
    write_png(good, drawing(0))
    odd = tmp_path / "b.png"
    if case == "fifo":
        os.mkfifo(odd)
    elif case == "dev-zero":
        os.symlink("/dev/zero", odd)
    elif case == "loop":
        os.symlink("b.png", odd)
    elif case == "folder":
        odd.mkdir()
    else:
        os.symlink("gone.png", odd)
    refused(capsys, ["interpolate", good, odd, "--count", "1", "--out", tmp_path / "out", "-q"], 2, (str(odd),),
            tmp_path)


BAD_VIDEOS = {
    "junk.mp4": (bytes(range(256)) * 20, "cannot be opened as a video"),
    "empty.mov": (b"", "empty"),
    "cut.mp4": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x01" * 500, "cannot be opened as a video"),
    "bomb.gif": (_gif_claiming(16000, 16000), "above the limit of 80 Mpx"),
    "wide.gif": (_gif_claiming(65000, 2), "above the limit"),
}


@pytest.mark.parametrize("name", sorted(BAD_VIDEOS))
def test_bad_video(tmp_path, capsys, name):
    data, words = BAD_VIDEOS[name]
    (tmp_path / name).write_bytes(data)
    refused(capsys, ["new", tmp_path / "shot", "--source", tmp_path / name, "-q"], 2, (name, words), tmp_path)


def test_ffmpeg_says_nothing_of_its_own(tmp_path):
    from hostile_kit import run_subprocess

    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x01" * 500)
    done = run_subprocess("new", tmp_path / "shot", "--source", tmp_path / "junk.mp4", "-q")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "moov" not in done.stderr and done.stderr.startswith("error: ")


def test_a_stray_far_numbered_file_does_not_exhaust_memory(tmp_path, capsys):
    footage = make_footage(tmp_path / "footage", count=2)
    write_png(footage / "walk.9999999999.png", drawing(1))
    refused(capsys, ["new", tmp_path / "shot", "--source", footage, "-q"], 2,
            ("9999999999", "limit of 10,000"), tmp_path)


def test_many_problems_in_one_folder_still_name_the_first(tmp_path, capsys):
    footage = make_footage(tmp_path / "footage", count=4)
    (footage / "walk.0002.png").write_bytes(b"")
    (footage / "walk.0003.png").write_bytes(b"junk")
    code, _out, err = cli(capsys, "new", tmp_path / "shot", "--source", footage, "-q")
    assert code == 2 and "walk.0002.png" in err and "walk.0003.png" not in err


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_file_names_that_are_not_text(tmp_path, capsys):
    footage = os.fsdecode(os.fsencode(str(tmp_path)) + b"/f\xffootage")
    make_footage(__import__("pathlib").Path(footage), count=2)
    refused(capsys, ["new", tmp_path / "shot", "--source", footage, "-q"], 2, ("not valid text",), tmp_path)
    good = make_footage(tmp_path / "good", count=2)
    project = os.fsdecode(os.fsencode(str(tmp_path)) + b"/sh\xfeot")  # never stored: allowed, printed escaped
    code, out, err = cli(capsys, "new", project, "--source", good, "-q")
    assert code == 0 and "sh\\udcfeot" in out, err  # the shot is named "sh\ufffdot"
    assert cli(capsys, "info", project)[0] == 0
