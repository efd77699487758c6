"""`tooncrafter-studio interpolate`: every option and every bad input."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.engines.base import Engine, InterpolationResult, ProbeResult
from tooncrafter_studio.engines.registry import register_engine, unregister_engine


def _disc(cx: float, size=(96, 64)) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), (236, 232, 214), np.uint8)
    cv2.circle(img, (int(cx), h // 2), 10, (220, 70, 60), -1)
    cv2.circle(img, (int(cx), h // 2), 10, (20, 20, 24), 2)
    return img


def _write(path, rgb: np.ndarray) -> str:
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, code))
    return str(path)


def _read(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


@pytest.fixture
def keys(tmp_path):
    return _write(tmp_path / "a.png", _disc(30)), _write(tmp_path / "b.png", _disc(60))


def _pngs(folder) -> list[str]:
    """PNGs in the folder; none when a failed run removed the folder it had made."""
    return sorted(p for p in os.listdir(folder) if p.endswith(".png")) if os.path.isdir(folder) else []


def _fails(argv, capsys, *fragments, expected_code: int = 2) -> str:
    try:
        code = run_cli(argv)
    except SystemExit as exc:  # argparse's own usage errors (wrong type, unknown choice)
        code = exc.code
    err = capsys.readouterr().err
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_writes_count_frames_with_default_names(keys, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["interpolate", *keys, "--count", "3", "--out", str(out), "--quiet"]) == 0
    assert _pngs(out) == ["inbetween.0001.png", "inbetween.0002.png", "inbetween.0003.png"]
    printed = capsys.readouterr().out
    assert str(out) in printed and "inbetween.0001.png" in printed
    frames = [_read(out / n) for n in _pngs(out)]
    assert all(f.shape == (64, 96, 3) for f in frames)
    # Time order: the disc's fill moves right from file to file.
    xs = [np.nonzero(np.abs(f.astype(int) - (220, 70, 60)).max(axis=2) < 40)[1].mean() for f in frames]
    assert xs[0] < xs[1] < xs[2]
    assert not list(out.glob(".*"))  # no temporary files left


@pytest.mark.parametrize(("separator", "expected"), [(".", "shot.0010.png"), ("_", "shot_0010.png"),
                                                     ("none", "shot0010.png"), ("-", "shot-0010.png")])
def test_name_separator_and_start_number(keys, tmp_path, separator, expected):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "-n", "2", "--out", str(out), "--name", "shot", "--separator", separator,
                    "--start-number", "10", "--quiet"]) == 0
    second = expected.replace("0010", "0011")
    assert _pngs(out) == sorted([expected, second])


def test_padding(keys, tmp_path):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "--count", "1", "--out", str(out), "--padding", "6", "--quiet"]) == 0
    assert _pngs(out) == ["inbetween.000001.png"]
    out2 = tmp_path / "o2"
    assert run_cli(["interpolate", *keys, "--count", "2", "--out", str(out2), "--padding", "1",
                    "--start-number", "9", "--quiet"]) == 0
    assert _pngs(out2) == ["inbetween.10.png", "inbetween.9.png"]


def test_explicit_times_decide_the_count(keys, tmp_path):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "--times", "0.1,0.5,0.9,0.95", "--out", str(out), "--quiet",
                    "--engine", "crossfade"]) == 0
    assert _pngs(out) == [f"inbetween.000{i}.png" for i in range(1, 5)]
    a, b = _read(keys[0]).astype(float), _read(keys[1]).astype(float)
    first = _read(out / "inbetween.0001.png").astype(float)
    assert np.abs(first - (0.9 * a + 0.1 * b)).max() <= 1.0


@pytest.mark.parametrize(("spacing", "first_weight"), [("linear", 0.25), ("ease-in", 1 - np.cos(0.25 * np.pi / 2)),
                                                       ("ease-out", np.sin(0.25 * np.pi / 2)),
                                                       ("ease-in-out", 0.5 - 0.5 * np.cos(0.25 * np.pi))])
def test_spacing_reaches_the_engine(keys, tmp_path, spacing, first_weight):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "--count", "3", "--spacing", spacing, "--engine", "crossfade",
                    "--out", str(out), "--quiet"]) == 0
    a, b = _read(keys[0]).astype(float), _read(keys[1]).astype(float)
    first = _read(out / "inbetween.0001.png").astype(float)
    assert np.abs(first - ((1 - first_weight) * a + first_weight * b)).max() <= 1.0


class _Recorder(Engine):
    id = "recorder"
    label = "records the request"
    last = None

    def probe(self) -> ProbeResult:
        return ProbeResult(True, "test")

    def interpolate(self, request, progress=None, cancel=None):
        _Recorder.last = request
        return InterpolationResult([request.start.copy() for _ in request.times])


class _Unavailable(Engine):
    id = "nope"

    def probe(self) -> ProbeResult:
        return ProbeResult(False, "no CUDA device was found")

    def interpolate(self, request, progress=None, cancel=None):  # pragma: no cover - never called
        raise AssertionError("an unavailable engine was run")


@pytest.fixture
def fake_engines():
    register_engine("recorder", _Recorder)
    register_engine("nope", _Unavailable)
    yield
    unregister_engine("recorder")
    unregister_engine("nope")


def test_seed_prompt_and_tooncrafter_options_reach_the_engine(keys, tmp_path, fake_engines):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "--count", "2", "--engine", "recorder", "--out", str(out), "--seed", "42",
                    "--prompt", "a cat jumps", "--model", "/m/model.ckpt", "--steps", "25", "--cfg", "5.5",
                    "--eta", "0.5", "--frame-stride", "8", "--memory", "low", "--device", "cpu", "--quiet"]) == 0
    request = _Recorder.last
    assert request.seed == 42 and request.prompt == "a cat jumps"
    assert request.params == {"model": "/m/model.ckpt", "steps": 25, "cfg": 5.5, "eta": 0.5, "frame_stride": 8,
                              "memory": "low", "device": "cpu"}
    assert request.times == pytest.approx([1 / 3, 2 / 3])


def test_fit_dtype_and_colour_match_reach_the_engine(keys, tmp_path, fake_engines):
    out = tmp_path / "o"
    assert run_cli(["interpolate", *keys, "--count", "1", "--engine", "recorder", "--out", str(out),
                    "--fit", "crop", "--dtype", "bf16", "--no-colour-match", "--quiet"]) == 0
    assert _Recorder.last.params == {"fit": "crop", "dtype": "bf16", "colour_match": False}


def test_flow_quality_reaches_the_flow_engine_only(keys, tmp_path, monkeypatch):
    from tooncrafter_studio.engines.flow import engine as flow

    seen = []
    real = flow.FlowEngine.interpolate

    def spy(self, request, progress=None, cancel=None):
        seen.append(dict(request.params))
        return real(self, request, progress, cancel)

    monkeypatch.setattr(flow.FlowEngine, "interpolate", spy)
    assert run_cli(["interpolate", *keys, "--count", "1", "--out", str(tmp_path / "o"), "--quality", "fast",
                    "--steps", "9", "--quiet"]) == 0
    assert seen == [{"quality": "fast"}]


def test_unavailable_engine_gives_its_reason(keys, tmp_path, capsys, fake_engines):
    out = tmp_path / "o"
    _fails(["interpolate", *keys, "--count", "2", "--engine", "nope", "--out", str(out)], capsys,
           "no CUDA device was found", expected_code=3)  # a resource problem: another machine may have one
    assert not out.exists()


def test_unknown_engine(keys, tmp_path, capsys):
    _fails(["interpolate", *keys, "--count", "2", "--engine", "magic", "--out", str(tmp_path / "o")], capsys,
           "Unknown engine 'magic'")


def test_alpha_and_sixteen_bit_are_kept(tmp_path):
    a = _disc(30).astype(np.uint16) * 257
    b = _disc(60).astype(np.uint16) * 257
    matte = np.zeros(a.shape[:2], np.uint16)
    matte[10:54, 10:86] = 65535
    pa = _write(tmp_path / "a.png", np.dstack([a, matte]))
    pb = _write(tmp_path / "b.png", np.dstack([b, matte]))
    out = tmp_path / "o"
    assert run_cli(["interpolate", pa, pb, "--count", "1", "--out", str(out), "--quiet"]) == 0
    frame = _read(out / "inbetween.0001.png")
    assert frame.dtype == np.uint16 and frame.shape == (64, 96, 4)
    assert frame[..., 3].max() == 65535 and frame[0, 0, 3] == 0


def test_resize_scales_end_to_start(tmp_path, capsys):
    pa = _write(tmp_path / "a.png", _disc(30))
    pb = _write(tmp_path / "b.png", cv2.resize(_disc(60), (192, 128)))
    out = tmp_path / "o"
    _fails(["interpolate", pa, pb, "--count", "1", "--out", str(out)], capsys, "--resize", "96x64", "192x128")
    assert run_cli(["interpolate", pa, pb, "--count", "1", "--out", str(out), "--resize", "--quiet"]) == 0
    assert _read(out / "inbetween.0001.png").shape == (64, 96, 3)


def test_missing_file(keys, tmp_path, capsys):
    missing = str(tmp_path / "nothing.png")
    _fails(["interpolate", keys[0], missing, "--count", "1", "--out", str(tmp_path / "o")], capsys,
           "nothing.png", "does not exist")


def test_unreadable_file(keys, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    _fails(["interpolate", str(bad), keys[1], "--count", "1", "--out", str(tmp_path / "o")], capsys, "broken.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _fails(["interpolate", keys[0], str(empty), "--count", "1", "--out", str(tmp_path / "o")], capsys, "empty.png")


@pytest.mark.parametrize(("count", "fragment"), [("0", "at least 1"), ("-3", "at least 1"), ("1001", "too many"),
                                                 ("100000000", "too many")])
def test_bad_count(keys, tmp_path, capsys, count, fragment):
    _fails(["interpolate", *keys, "--count", count, "--out", str(tmp_path / "o")], capsys, fragment)


def test_count_or_times_required(keys, tmp_path, capsys):
    _fails(["interpolate", *keys, "--out", str(tmp_path / "o")], capsys, "--count")


def test_count_not_a_number(keys, tmp_path, capsys):
    _fails(["interpolate", *keys, "--count", "three", "--out", str(tmp_path / "o")], capsys, "--count")


@pytest.mark.parametrize(("times", "fragment"), [("0,0.5", "outside (0, 1)"), ("0.5,1", "outside (0, 1)"),
                                                 ("1.5", "outside (0, 1)"), ("0.6,0.3", "increase"),
                                                 ("0.2,abc", "not a number"), ("", "No in-between times")])
def test_bad_times(keys, tmp_path, capsys, times, fragment):
    _fails(["interpolate", *keys, "--times", times, "--out", str(tmp_path / "o")], capsys, fragment)


def test_times_and_count_must_agree(keys, tmp_path, capsys):
    _fails(["interpolate", *keys, "--count", "3", "--times", "0.5", "--out", str(tmp_path / "o")], capsys,
           "3 in-betweens")


def test_output_folder_is_a_file(keys, tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    _fails(["interpolate", *keys, "--count", "1", "--out", str(target)], capsys, "is a file")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root can write anywhere")
def test_output_folder_not_writable(keys, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _fails(["interpolate", *keys, "--count", "1", "--out", str(locked / "sub")], capsys, "locked")
    finally:
        locked.chmod(0o700)


def test_output_folder_unwritable_simulated(keys, tmp_path, capsys, monkeypatch):
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile_module, "mkstemp", refuse)
    _fails(["interpolate", *keys, "--count", "1", "--out", str(tmp_path / "o")], capsys,
           "No permission to write", str(tmp_path / "o"), expected_code=3)  # a resource problem


@pytest.mark.parametrize(("option", "value", "fragment"), [("--padding", "0", "--padding"),
                                                           ("--padding", "11", "--padding"),
                                                           ("--start-number", "-1", "--start-number"),
                                                           ("--name", "a/b", "--name"),
                                                           ("--separator", "+", "--separator"),
                                                           ("--spacing", "bouncy", "--spacing")])
def test_bad_naming_options(keys, tmp_path, capsys, option, value, fragment):
    _fails(["interpolate", *keys, "--count", "1", "--out", str(tmp_path / "o"), option, value], capsys, fragment)


def test_grey_and_rgb_rgba_mix_are_accepted(tmp_path):
    grey = cv2.cvtColor(_disc(30), cv2.COLOR_RGB2GRAY)
    pa = tmp_path / "a.png"
    assert cv2.imwrite(str(pa), grey)
    rgba = np.dstack([_disc(60), np.full((64, 96), 255, np.uint8)])
    pb = _write(tmp_path / "b.png", rgba)
    out = tmp_path / "o"
    assert run_cli(["interpolate", str(pa), pb, "--count", "1", "--out", str(out), "--quiet"]) == 0
    assert _read(out / "inbetween.0001.png").shape == (64, 96, 4)


def test_failed_write_removes_what_was_written(keys, tmp_path, capsys, monkeypatch):
    from tooncrafter_studio.cli import interpolate_cmd
    from tooncrafter_studio.core.errors import ExportError

    real = interpolate_cmd.write_png
    calls = []

    def full_disk_on_second(path, frame, error=ExportError):
        calls.append(path)
        if len(calls) == 2:
            raise error(f"The disk is full: could not write {path}.")
        real(path, frame, error=error)

    monkeypatch.setattr(interpolate_cmd, "write_png", full_disk_on_second)
    out = tmp_path / "o"
    _fails(["interpolate", *keys, "--count", "3", "--out", str(out), "--quiet"], capsys, "disk is full")
    assert _pngs(out) == []


def test_tooncrafter_unavailable_here_exits_3_with_reason(keys, tmp_path, capsys):
    from tooncrafter_studio.engines.registry import create_engine

    engine = create_engine("tooncrafter")
    engine.configure({"model": str(tmp_path / "no-such-model.ckpt"), "device": "cpu"})
    if engine.probe().available:
        pytest.skip("a ToonCrafter model is available here")
    out = tmp_path / "o"
    err = _fails(["interpolate", *keys, "--count", "2", "--engine", "tooncrafter", "--out", str(out),
                  "--model", str(tmp_path / "no-such-model.ckpt"), "--device", "cpu"], capsys,
                 "The tooncrafter engine is not available", expected_code=3)
    assert len(err.strip()) > len("error: The tooncrafter engine is not available: ")  # a reason follows
    assert not out.exists()


def test_existing_files_are_not_overwritten_without_the_flag(keys, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    mine = out / "inbetween.0002.png"
    mine.write_bytes(b"an animator's own drawing")
    _fails(["interpolate", *keys, "--count", "3", "--out", str(out), "--quiet"], capsys,
           "already holds inbetween.0002.png", "--overwrite")
    assert mine.read_bytes() == b"an animator's own drawing"
    assert _pngs(out) == ["inbetween.0002.png"]
    assert run_cli(["interpolate", *keys, "--count", "3", "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert _pngs(out) == ["inbetween.0001.png", "inbetween.0002.png", "inbetween.0003.png"]
    assert _read(mine).ndim == 3


def test_presets_set_the_steps_and_explicit_steps_win(keys, tmp_path, fake_engines):
    assert run_cli(["interpolate", *keys, "--count", "1", "--engine", "recorder", "--out", str(tmp_path / "a"),
                    "--preset", "draft", "--quiet"]) == 0
    assert _Recorder.last.params == {"steps": 15}
    assert run_cli(["interpolate", *keys, "--count", "1", "--engine", "recorder", "--out", str(tmp_path / "b"),
                    "--preset", "draft", "--steps", "30", "--quiet"]) == 0
    assert _Recorder.last.params == {"steps": 30}
