"""Hostile input to the commands that edit a project or write next to one: `sketches --add`,
`review`, `keys` and `lineart`. Each is refused in one line with exit 2, and nothing changes."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from hostile_kit import cli, drawing, make_project, refused
from test_hostile_media_files import BAD_IMAGES

from tooncrafter_studio.media import write_png


@pytest.fixture()
def shot(tmp_path):
    return make_project(tmp_path)


# --- sketches --add: the image rules of import, the moment a sketch is placed ---

SKETCH_CASES = ["text", "random", "png-bomb", "bmp-bomb", "png-zero-size", "truncated-png", "empty"]


@pytest.mark.parametrize("case", SKETCH_CASES)
def test_sketch_that_is_not_a_readable_image_is_refused_and_not_copied(shot, tmp_path, capsys, case):
    if case == "truncated-png":
        data, words = (tmp_path / "x").write_bytes(b""), "sketch"
        good = tmp_path / "good.png"
        write_png(good, drawing(1))
        data, words = good.read_bytes()[:-30], ""
    else:
        data, words = BAD_IMAGES[case]
    bad = tmp_path / ("pose.bmp" if case.startswith("bmp") else "pose.png")
    bad.write_bytes(data)
    refused(capsys, ["sketches", shot, "--add", f"3={bad}"], 2, ("pose", words), shot)
    assert not (shot / "sketches").exists()


@pytest.mark.parametrize("frame", ["²", "３", "١", "3.0", "3-4", "9" * 400])
def test_sketch_frame_not_written_in_ascii_digits_is_a_clear_error(shot, tmp_path, capsys, frame):
    good = tmp_path / "pose.png"
    write_png(good, drawing(2))
    refused(capsys, ["sketches", shot, "--add", f"{frame}={good}"], 2, ("not a frame number",), shot)
    refused(capsys, ["sketches", shot, "--remove", frame], 2, ("not a frame number",), shot)


def test_sketch_that_is_a_fifo_or_a_folder_is_refused(shot, tmp_path, capsys):
    fifo = tmp_path / "pose.png"
    os.mkfifo(fifo)
    refused(capsys, ["sketches", shot, "--add", f"3={fifo}"], 2, ("FIFO",), shot)
    refused(capsys, ["sketches", shot, "--add", f"3={tmp_path}"], 2, ("folder",), shot)


def test_a_good_sketch_is_still_placed(shot, tmp_path, capsys):
    good = tmp_path / "pose.png"
    write_png(good, drawing(2))
    code, out, err = cli(capsys, "sketches", shot, "--add", f"3={good}")
    assert code == 0, err
    assert "sketches at 3 (pose.png)" in out
    assert len(list((shot / "sketches").iterdir())) == 1
    named_wrong = tmp_path / "pose.txt"  # a PNG under another name: stored as what it is
    write_png(named_wrong, drawing(3))
    code, out, err = cli(capsys, "sketches", shot, "--add", f"4={named_wrong}")
    assert code == 0, err
    assert "4 (pose.txt)" in out
    assert sorted(p.suffix for p in (shot / "sketches").iterdir()) == [".png", ".png"]


# --- review and keys: one frame parser, bounded before expanding ---

@pytest.mark.parametrize("command", [["review", "{shot}", "accept"], ["keys", "{shot}", "--frames"]])
@pytest.mark.parametrize("frames, words", [
    ("1-1000000000", "beyond the limit"),
    ("2-99", "outside the shot (frames 1 to 5)"),
    ("²", "not a frame number"),
    ("1-３", "not a frame number"),
    ("5-1", "backwards"),
    (",".join(["1-5"] * 24000), "more than"),
])
def test_frame_lists_are_refused_alike(shot, capsys, command, frames, words):
    argv = [a.format(shot=shot) for a in command] + [frames]
    refused(capsys, argv, 2, (words,), shot)


def test_review_of_a_billion_frames_allocates_nothing_big(shot, capsys):
    tracemalloc.start()
    try:
        code, _out, err = cli(capsys, "review", shot, "accept", "1-1000000000")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 2 and "beyond the limit" in err, err
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB"  # opening the project, not one entry per frame


# --- lineart: never the input, never a project's file, anything else only with --overwrite ---

@pytest.fixture()
def pose(tmp_path):
    path = tmp_path / "pose.png"
    write_png(path, drawing(3))
    return path


def test_lineart_never_replaces_its_input(pose, tmp_path, capsys):
    refused(capsys, ["lineart", pose, pose], 2, ("input",), tmp_path)
    refused(capsys, ["lineart", pose, pose, "--overwrite"], 2, ("input",), tmp_path)
    link = tmp_path / "other-name.png"
    os.link(pose, link)
    refused(capsys, ["lineart", pose, link, "--overwrite"], 2, ("input",), tmp_path)


@pytest.mark.parametrize("inside", ["project.json", ".autosave/project.json", "sketches/s.png", "takes/t/f.png"])
def test_lineart_never_replaces_a_projects_file(shot, pose, capsys, inside):
    target = shot / inside
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_png(target, drawing(4))
    refused(capsys, ["lineart", pose, target, "--overwrite"], 2, ("belongs to the project",), shot, pose.parent)


def test_lineart_replaces_an_existing_file_only_with_overwrite(pose, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"someone's file")
    refused(capsys, ["lineart", pose, out], 2, ("--overwrite",), tmp_path)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere" / "x.png")
    refused(capsys, ["lineart", pose, dangling], 2, ("--overwrite",), tmp_path)
    code, _out, err = cli(capsys, "lineart", pose, out, "--overwrite")
    assert code == 0, err
    assert out.read_bytes().startswith(b"\x89PNG")
    code, _out, err = cli(capsys, "lineart", pose, tmp_path / "new.png")
    assert code == 0 and (tmp_path / "new.png").is_file(), err


def test_interpolate_never_replaces_a_projects_file_either(shot, capsys):
    footage = shot.parent / "footage"
    takes = shot / "takes" / "t0000000001"
    takes.mkdir(parents=True)
    write_png(takes / "inb.0001.png", drawing(4))
    refused(capsys, ["interpolate", footage / "walk.0001.png", footage / "walk.0005.png", "--count", "1",
                     "--out", takes, "--name", "inb", "--start-number", "1", "--overwrite", "-q"], 2,
            ("belongs to the project",), shot.parent)
