"""`interpolate --sketch T=PATH / --sketch-dir / --sketch-scale / --sketch-context / --sketch-snap`:
what reaches the engine, the notes, bad input, the flow engine's note, and a tiny reduced model
generating with a sketch end to end through the CLI."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import cv2
import numpy as np
import pytest

from tooncrafter_studio.cli.main import run_cli
from tooncrafter_studio.engines.base import InterpolationResult, ProbeResult
from tooncrafter_studio.engines.registry import register_engine, unregister_engine
from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine


def _write(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def _key(x, size=(96, 64)):
    img = np.full((size[1], size[0], 3), 250, np.uint8)
    cv2.circle(img, (x, size[1] // 2), 10, (200, 60, 60), -1)
    return img


def _line_art(x, size=(96, 64)):
    img = np.full((size[1], size[0], 3), 255, np.uint8)
    cv2.circle(img, (x, size[1] // 2), 10, (0, 0, 0), 2)
    return img


@pytest.fixture
def files(tmp_path):
    a, b = _write(tmp_path / "a.png", _key(30)), _write(tmp_path / "b.png", _key(60))
    s = _write(tmp_path / "pose.png", _line_art(45))
    return a, b, s


class RecordingEngine(ToonCrafterEngine):
    id = "sketch-recorder"

    def __init__(self):
        super().__init__()
        self.requests = []

    def probe(self):
        return ProbeResult(True, "test")

    def load(self, progress=None, cancel=None):
        pass

    def interpolate(self, request, progress=None, cancel=None):
        self.requests.append(request)
        return InterpolationResult([request.start.copy() for _ in request.times], {})


@pytest.fixture
def recorder():
    engine = RecordingEngine()
    register_engine("sketch-recorder", lambda: engine)
    yield engine
    unregister_engine("sketch-recorder")


def test_sketches_by_time_and_by_number_reach_the_engine(files, tmp_path, recorder, capsys):
    a, b, s = files
    code = run_cli(["interpolate", a, b, "--count", "3", "--out", str(tmp_path / "out"), "--engine", "sketch-recorder",
                    "--sketch", f"2={s}", "--sketch", f"0.3={s}", "--sketch-scale", "0.9", "--sketch-context", "all",
                    "-q"])
    assert code == 0
    params = recorder.requests[0].params
    assert [round(x.time, 4) for x in params["sketches"]] == [0.3, 0.5]
    assert params["sketches"][0].name == "pose.png" and len(params["sketches"][0].sha256) == 64
    assert params["sketch_scale"] == 0.9 and params["sketch_context"] == "all"


def test_notes_say_where_a_sketch_lands_and_snap_moves_it(files, tmp_path, recorder, capsys):
    a, b, s = files
    assert run_cli(["interpolate", a, b, "--count", "3", "--out", str(tmp_path / "o1"), "--engine",
                    "sketch-recorder", "--sketch", f"2={s}"]) == 0
    err = capsys.readouterr().err
    assert "t=0.5000 falls between generated frames; it guides frame 8 of 15 (t=0.5333)" in err
    assert run_cli(["interpolate", a, b, "--count", "3", "--out", str(tmp_path / "o2"), "--engine",
                    "sketch-recorder", "--sketch", f"2={s}", "--sketch-snap", "-q"]) == 0
    request = recorder.requests[-1]
    assert request.times[1] == pytest.approx(8 / 15) and request.params["sketches"][0].time == pytest.approx(8 / 15)


def test_sketch_dir_files_are_named_by_output_frame_number(files, tmp_path, recorder):
    a, b, s = files
    folder = tmp_path / "sk"
    folder.mkdir()
    _write(folder / "inbetween.0011.png", _line_art(40))
    (folder / "notes.txt").write_text("ignored")
    assert run_cli(["interpolate", a, b, "--count", "3", "--out", str(tmp_path / "o"), "--engine", "sketch-recorder",
                    "--sketch-dir", str(folder), "--start-number", "10", "-q"]) == 0
    sketches = recorder.requests[0].params["sketches"]
    assert [(x.name, x.time) for x in sketches] == [("inbetween.0011.png", 0.5)]


@pytest.mark.parametrize("spec, fragment", [
    ("0.5", "give TIME=PATH"), ("1.2=x.png", "not between the keys"), ("7=x.png", "in-between 7 does not exist"),
    ("abc=x.png", "neither a time"), ("0.5=missing.png", "does not exist"),
])
def test_bad_sketch_specs(files, tmp_path, recorder, capsys, spec, fragment):
    a, b, _ = files
    code = run_cli(["interpolate", a, b, "--count", "3", "--out", str(tmp_path / "o"), "--engine", "sketch-recorder",
                    "--sketch", spec])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "Traceback" not in err


def test_bad_sketch_scale_is_refused(files, tmp_path, recorder, capsys):
    a, b, s = files
    code = run_cli(["interpolate", a, b, "--count", "1", "--out", str(tmp_path / "o"), "--engine", "sketch-recorder",
                    "--sketch", f"1={s}", "--sketch-scale", "2"])
    assert code == 2 and "between 0 and 1.5" in capsys.readouterr().err


def test_the_flow_engine_ignores_sketches_with_a_note(files, tmp_path, capsys):
    a, b, s = files
    assert run_cli(["interpolate", a, b, "--count", "1", "--out", str(tmp_path / "o"), "--sketch", f"1={s}"]) == 0
    assert "the flow engine ignores sketches" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("open_clip") is None,
                    reason="needs torch and open_clip")
def test_a_tiny_reduced_model_generates_with_a_sketch_through_the_cli(files, tmp_path, capsys):
    import torch

    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model
    from tooncrafter_studio.diffusion.nets.sketch_encoder import SketchEncoderConfig, build_sketch_encoder

    model = build_model(dataclasses.replace(ToonCrafterConfig.reduced(), latent_size=(8, 8)), device="cpu")
    fill_module(model)
    encoder = build_sketch_encoder(SketchEncoderConfig.reduced(), device="cpu")
    fill_module(encoder)
    encoder_path = tmp_path / "sketch_encoder.safetensors"
    torch.save(encoder.state_dict(), tmp_path / "enc.ckpt")
    from tooncrafter_studio.diffusion.weights.checkpoint import convert, expected_sketch_keys

    convert(tmp_path / "enc.ckpt", encoder_path, "fp32", expected=expected_sketch_keys(SketchEncoderConfig.reduced()))
    seen = {}

    class Tiny(ToonCrafterEngine):
        def interpolate(self, request, progress=None, cancel=None):
            result = super().interpolate(request, progress, cancel)
            seen["info"] = result.info
            return result

    register_engine("tooncrafter-tiny", lambda: Tiny(model=model))
    try:
        a, b, s = files
        code = run_cli(["interpolate", a, b, "--count", "1", "--out", str(tmp_path / "out"), "--engine",
                        "tooncrafter-tiny", "--device", "cpu", "--steps", "1", "--seed", "4",
                        "--sketch", f"0.5={s}", "--sketch-encoder", str(encoder_path), "-q"])
    finally:
        unregister_engine("tooncrafter-tiny")
    assert code == 0, capsys.readouterr().err
    frame = cv2.imread(str(tmp_path / "out" / "inbetween.0001.png"))
    assert frame is not None and frame.shape == (64, 96, 3)
    record = seen["info"]["sketches"]
    assert record["sketches"][0]["name"] == "pose.png" and record["sketches"][0]["guided"][0]["frame"] == 8
    assert record["encoder"]["name"] == "sketch_encoder.safetensors"
    json.dumps(seen["info"])  # provenance is plain data
