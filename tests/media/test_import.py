"""Sequences, patterns, natural sort, gaps, loose files, video, hold detection and all-or-nothing import."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tooncrafter_studio.core.errors import Cancelled, MediaError
from tooncrafter_studio.core.progress import CancelToken
from tooncrafter_studio.media import import_source, read_frame
from tooncrafter_studio.media.holds import detect_holds, frames_match
from tooncrafter_studio.media.imageio import write_png
from tooncrafter_studio.media.sequence import (
    list_sequence,
    natural_key,
    parse_numbered,
    pattern_regex,
)
from tooncrafter_studio.project.document import SourceKind


def frame(value: int, h=8, w=12, channels=3, dtype=np.uint8) -> np.ndarray:
    a = np.zeros((h, w, channels), dtype)
    a[:, : 1 + value % w] = 50 + value
    if channels == 4:
        a[:, :, 3] = 255
    return a


def make_sequence(folder, names, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_png(folder / name, frame(i, **kw))
    return folder


@pytest.mark.parametrize("name,prefix,number,padding", [
    ("walk.0001.png", "walk.", 1, 4),
    ("walk_00012.png", "walk_", 12, 5),
    ("walk0100.png", "walk", 100, 4),
    ("0007.png", "", 7, 4),
    ("shot2_v3_015.tif", "shot2_v3_", 15, 3),
    ("shot_0042_comp.png", "shot_", 42, 4),
])
def test_parse_numbered(name, prefix, number, padding):
    parsed = parse_numbered(name)
    assert (parsed.prefix, parsed.number, parsed.padding) == (prefix, number, padding)


def test_number_inside_the_name(tmp_path):
    folder = make_sequence(tmp_path / "s", ["sh_0002_comp.png", "sh_0001_comp.png", "sh_0001_matte.png"])
    result = import_source(folder)
    assert result.source.files == ["sh_0001_comp.png", "sh_0002_comp.png"]


def test_parse_numbered_without_number():
    assert parse_numbered("cover.png") is None


def test_natural_sort():
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "F3.png", "f10.png"]


@pytest.mark.parametrize("pattern,display,matches,rejects", [
    ("walk.####.png", "walk.####.png", ["walk.0012.png", "walk.12345.png"], ["walk.012.png", "walk_0012.png"]),
    ("walk.%04d.png", "walk.####.png", ["walk.0012.png"], ["walk.12.png", "walk.0012.jpg"]),
    ("walk_%d.png", "walk_#.png", ["walk_7.png", "walk_0007.png"], ["walk7.png"]),
    ("walk.$F4.png", "walk.####.png", ["walk.0001.png"], ["walk.1.png"]),
])
def test_pattern_regex(pattern, display, matches, rejects):
    regex, shown = pattern_regex(pattern)
    assert shown == display
    for name in matches:
        assert regex.match(name), name
    for name in rejects:
        assert not regex.match(name), name
    assert pattern_regex("walk.png") is None


def test_folder_sorted_numerically_with_unpadded_names(tmp_path):
    folder = make_sequence(tmp_path / "seq", ["f1.png", "f2.png", "f10.png", "f9.png"])
    listing = list_sequence(folder)
    assert [p.name for p in listing.files] == ["f1.png", "f2.png", "f9.png", "f10.png"]
    assert listing.gaps == [3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("names", [
    ["walk.0001.png", "walk.0002.png", "walk.0003.png"],
    ["walk_0001.png", "walk_0002.png", "walk_0003.png"],
    ["walk0001.png", "walk0002.png", "walk0003.png"],
])
def test_folder_import(tmp_path, names):
    folder = make_sequence(tmp_path / "seq", names)
    result = import_source(folder)
    src = result.source
    assert src.kind == SourceKind.SEQUENCE
    assert src.files == names
    assert (src.width, src.height, src.frame_count, src.bit_depth, src.has_alpha) == (12, 8, 3, 8, False)
    assert result.groups is None and result.warnings == []
    np.testing.assert_array_equal(read_frame(src, 2), frame(2))


def test_pattern_import_and_gaps_reported(tmp_path):
    folder = make_sequence(tmp_path / "seq", ["a.0001.png", "a.0002.png", "a.0005.png", "b.0001.png"])
    for pattern in ("a.####.png", "a.%04d.png"):
        result = import_source(folder / pattern)
        assert result.source.files == ["a.0001.png", "a.0002.png", "a.0005.png"]
        assert result.source.gaps == [3, 4]
        assert any("2 frames missing" in w and "3, 4" in w for w in result.warnings)


def test_folder_with_two_series_takes_the_larger_and_warns(tmp_path):
    folder = make_sequence(tmp_path / "seq", ["a.0001.png", "a.0002.png", "a.0003.png", "b.0001.png", "cover.png"])
    result = import_source(folder)
    assert result.source.files == ["a.0001.png", "a.0002.png", "a.0003.png"]
    assert any("2 other images" in w for w in result.warnings)


def test_single_numbered_file_imports_its_series(tmp_path):
    folder = make_sequence(tmp_path / "seq", ["x_0001.png", "x_0002.png", "x_0003.png", "y_0001.png"])
    result = import_source(folder / "x_0002.png")
    assert result.source.files == ["x_0001.png", "x_0002.png", "x_0003.png"]


def test_single_plain_image(tmp_path):
    make_sequence(tmp_path, ["cover.png"])
    result = import_source(tmp_path / "cover.png")
    assert result.source.frame_count == 1 and result.source.kind == SourceKind.IMAGES


def test_dropped_files_loose_in_natural_order(tmp_path):
    make_sequence(tmp_path / "a", ["pose10.png", "pose2.png"])
    make_sequence(tmp_path / "b", ["extra.png"])
    paths = [tmp_path / "a" / "pose10.png", tmp_path / "b" / "extra.png", tmp_path / "a" / "pose2.png"]
    src = import_source(paths).source
    assert src.kind == SourceKind.IMAGES
    assert src.files == ["a/pose2.png", "a/pose10.png", "b/extra.png"]
    np.testing.assert_array_equal(read_frame(src, 2), frame(0))


def test_dropped_numbered_files_form_a_sequence(tmp_path):
    folder = make_sequence(tmp_path / "s", ["k.0003.png", "k.0001.png", "k.0002.png"])
    src = import_source([folder / "k.0003.png", folder / "k.0001.png"]).source
    assert src.kind == SourceKind.SEQUENCE
    assert src.files == ["k.0001.png", "k.0003.png"] and src.gaps == [2]


def test_alpha_and_16_bit_detected_from_headers(tmp_path):
    folder = make_sequence(tmp_path / "s", ["a.0001.png", "a.0002.png"], channels=4, dtype=np.uint16)
    src = import_source(folder).source
    assert src.has_alpha and src.bit_depth == 16
    out = read_frame(src, 1)
    assert out.dtype == np.uint16 and out.shape == (8, 12, 4)


def test_mixed_alpha_frames_conformed(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    write_png(folder / "a.0001.png", frame(0, channels=4))
    write_png(folder / "a.0002.png", frame(1, channels=3))
    result = import_source(folder)
    assert result.source.has_alpha
    assert read_frame(result.source, 1)[..., 3].min() == 255
    assert any("transparency" in w for w in result.warnings)


def test_different_sizes_name_the_offending_file(tmp_path):
    folder = make_sequence(tmp_path / "s", ["a.0001.png", "a.0002.png", "a.0004.png"])
    write_png(folder / "a.0003.png", frame(0, h=10))
    with pytest.raises(MediaError, match=r"a\.0003\.png is 12x10 but the sequence is 12x8"):
        import_source(folder)


@pytest.mark.parametrize("bad", ["zero", "text", "truncated"])
def test_bad_frame_stops_the_import(tmp_path, bad):
    folder = make_sequence(tmp_path / "s", ["a.0001.png", "a.0002.png", "a.0003.png"])
    target = folder / "a.0002.png"
    if bad == "zero":
        target.write_bytes(b"")
    elif bad == "text":
        target.write_text("hello")
    else:
        target.write_bytes(target.read_bytes()[:-20])
    with pytest.raises(MediaError, match=r"a\.0002\.png"):
        import_source(folder)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="contains no images"):
        import_source(tmp_path / "empty")
    with pytest.raises(MediaError, match="does not exist"):
        import_source(tmp_path / "nope")
    with pytest.raises(MediaError, match="No files match"):
        import_source(tmp_path / "empty" / "x.####.png")


def test_duplicate_frame_numbers_refused(tmp_path):
    folder = make_sequence(tmp_path / "s", ["a_1.png", "a_01.png"])
    with pytest.raises(MediaError, match="both claim frame 1"):
        import_source([folder / "a_1.png", folder / "a_01.png"])


def test_relative_source_path_resolved_against_project(tmp_path):
    folder = make_sequence(tmp_path / "proj" / "media", ["a.0001.png", "a.0002.png"])
    src = import_source(folder).source
    src.path = "media"
    np.testing.assert_array_equal(read_frame(src, 1, tmp_path / "proj"), frame(1))


def test_file_replaced_after_import_is_reported(tmp_path):
    folder = make_sequence(tmp_path / "s", ["a.0001.png", "a.0002.png"])
    src = import_source(folder).source
    write_png(folder / "a.0002.png", frame(1, h=4))
    with pytest.raises(MediaError, match="a.0002.png is now 12x4"):
        read_frame(src, 1)


def test_import_reports_progress_and_cancels(tmp_path):
    folder = make_sequence(tmp_path / "s", [f"a.{i:04d}.png" for i in range(1, 6)])
    events = []
    import_source(folder, progress=events.append)
    assert events[-1].stage == "check" and events[-1].done == 5 and events[-1].total == 5
    token = CancelToken()

    def cancel_after_two(event):
        if event.done == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        import_source(folder, progress=cancel_after_two, cancel=token)


def test_detect_holds_on_twos(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    drawings = [0, 0, 1, 1, 2, 2, 2, 3]
    for i, d in enumerate(drawings):
        write_png(folder / f"a.{i + 1:04d}.png", frame(d))
    result = import_source(folder, detect_holds=True)
    assert result.groups == [(0, 2), (2, 2), (4, 3), (7, 1)]


def test_hold_tolerance():
    a = frame(3, h=100, w=100)
    noisy = a.copy()
    noisy[::2, ::2] += 3  # compression-like noise everywhere
    assert frames_match(a, noisy, tolerance=6)
    assert not frames_match(a, noisy, tolerance=2)
    moved = a.copy()
    moved[40:60, 40:60] = 255  # a real change: 4% of the picture
    assert not frames_match(a, moved)
    assert detect_holds([a, noisy, moved, moved]) == [(0, 2), (2, 2)]


def test_video_import_reads_fps_and_frames(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for i in range(6):
        img = np.full((48, 64, 3), 40, np.uint8)
        img[:, (i // 2) * 16:(i // 2) * 16 + 16] = 220  # drawings on 2s
        writer.write(img)
    writer.release()
    result = import_source(path, detect_holds=True)
    src = result.source
    assert src.kind == SourceKind.VIDEO
    assert src.fps == pytest.approx(12.0)
    assert (src.width, src.height, src.frame_count) == (64, 48, 6)
    assert result.groups == [(0, 2), (2, 2), (4, 2)]
    f3 = read_frame(src, 3)
    f0 = read_frame(src, 0)
    assert f3.shape == (48, 64, 3) and f3[:, 16:32].mean() > 180 and f0[:, 16:32].mean() < 80


def test_broken_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(MediaError, match="bad.mp4"):
        import_source(tmp_path / "bad.mp4")
    (tmp_path / "zero.mov").write_bytes(b"")
    with pytest.raises(MediaError, match="zero.mov.*zero bytes"):
        import_source(tmp_path / "zero.mov")


def test_pixel_limit_applies_to_every_frame_of_an_import(tmp_path):
    folder = make_sequence(tmp_path / "s", ["a.0001.png", "a.0002.png"])
    with pytest.raises(MediaError, match=r"a\.0001\.png is too large"):
        import_source(folder, max_pixels=50)


def test_fast_and_slow_decoders_agree(tmp_path):
    """8-bit RGB PNGs take OpenCV's path, others Pillow's; both give the same pixels."""
    from PIL import Image

    from tooncrafter_studio.media.imageio import _plain_png, read_image

    a = np.random.default_rng(3).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "pil.png")
    Image.fromarray(a).save(tmp_path / "pil.bmp")
    assert _plain_png(tmp_path / "pil.png") and not _plain_png(tmp_path / "pil.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "pil.png"), read_image(tmp_path / "pil.bmp"))


def test_import_decodes_no_pixels(tmp_path, monkeypatch):
    """Lazy import: headers only. Any decoder call would fail this test."""
    import PIL.ImageFile

    from tooncrafter_studio.media import imageio

    folder = make_sequence(tmp_path / "s", [f"a.{i:04d}.png" for i in range(1, 21)])

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded during import")
    monkeypatch.setattr(imageio.cv2, "imdecode", no_decoding)
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_decoding)
    result = import_source(folder)
    assert result.source.frame_count == 20


def test_single_dropped_video_in_a_list(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 32))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for _ in range(3):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    src = import_source([path]).source
    assert src.kind == SourceKind.VIDEO and src.frame_count == 3 and src.fps == pytest.approx(25.0)
