"""Sketches in the ToonCrafter engine: where each lands, the notes, the hints per pass (more than
14 in-betweens included), provenance, and a tiny reduced model generating with a sketch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tooncrafter_studio.core.errors import InputError, ModelError
from tooncrafter_studio.engines.base import InterpolationRequest
from tooncrafter_studio.engines.sketch import Sketch, split_sketch_params
from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine
from tooncrafter_studio.engines.tooncrafter import sketches as sk
from tooncrafter_studio.engines.tooncrafter.fit import plan_fit


def _line_art(h=60, w=90, x=30):
    img = np.full((h, w, 3), 255, np.uint8)
    img[:, x : x + 2] = 0  # a vertical black line
    return img


def test_a_sketch_lands_on_the_nearest_generated_frame_and_the_user_is_told():
    on_grid = Sketch(1 / 3, _line_art(), "a.png")  # 5/15 exactly
    between = Sketch(0.5, _line_art(), "b.png")  # 7.5/15: frame 8 (half to even)
    found = sk.landings([on_grid, between])
    assert [(x.frame, x.exact) for x in found] == [(5, True), (8, False)]
    notes = sk.placement_notes([on_grid, between], [0.25, 0.5, 0.75])
    assert any("b.png at t=0.5000 falls between generated frames; it guides frame 8" in n and "t=0.5333" in n
               for n in notes)
    assert any("a.png at t=0.3333 is at no requested in-between" in n for n in notes)
    times, moved = sk.snap_times([0.25, 0.5, 0.75], [between])
    assert times == [0.25, pytest.approx(8 / 15), 0.75] and moved[0].time == pytest.approx(8 / 15)


def test_hints_are_blank_pages_except_where_sketches_land_and_follow_the_keys_fit():
    plan = plan_fit(90, 60, "letterbox", 64, 64)
    hints, found = sk.pass_hints([Sketch(1 / 3, _line_art(), "a")], 0.0, 1.0, plan)
    assert hints.shape == (16, 1, 64, 64) and hints.dtype == np.float32
    assert [x.frame for x in found] == [5]
    assert np.count_nonzero(np.delete(hints, 5, axis=0)) == 0
    ink = hints[5, 0]
    assert ink.max() > 0.5 and ink.min() == 0.0
    cols = np.nonzero(ink.max(axis=0) > 0.5)[0]
    assert abs(cols.mean() - (31 * 64 / 90)) < 2  # the line sits where it sits on the key
    assert np.count_nonzero(ink[:10]) == 0  # letterbox bars are blank


def test_transparent_sketch_pages_are_white_not_ink():
    rgba = np.zeros((60, 90, 4), np.uint8)  # fully transparent black page
    rgba[:, 30:32] = (0, 0, 0, 255)
    plane = sk.sketch_plane(Sketch(0.5, rgba), plan_fit(90, 60, "letterbox", 64, 64))
    assert plane.mean() < 0.1 and plane.max() > 0.5


def test_bad_sketch_params_are_refused():
    with pytest.raises(InputError, match="between the keys"):
        Sketch(1.0, _line_art())
    with pytest.raises(InputError, match="same time"):
        split_sketch_params({"sketches": [Sketch(0.5, _line_art()), Sketch(0.5, _line_art())]})
    with pytest.raises(InputError, match="between 0 and 1.5"):
        split_sketch_params({"sketch_scale": 2})
    with pytest.raises(InputError, match="text, all"):
        split_sketch_params({"sketch_context": "image"})


class RecordingBackend:
    model_size = (64, 64)

    def __init__(self):
        self.calls = []

    def __call__(self, start, end, params, *, callback, cancel):
        sketch = {} if params.sketch_hints is None else {
            "sketch_hints": params.sketch_hints, "sketch_scale": params.sketch_scale,
            "sketch_context": params.sketch_context}
        self.calls.append(sketch)
        return np.stack([start] + [((start.astype(int) + end) // 2).astype(np.uint8)] * 14 + [end])


def test_more_than_fourteen_inbetweens_give_the_sketch_to_every_pass_containing_its_time():
    backend = RecordingBackend()
    engine = ToonCrafterEngine(backend=backend, trim_keys=False)
    times = [i / 21 for i in range(1, 21)]
    sketch = Sketch(10 / 21, _line_art(), "mid.png")
    request = InterpolationRequest(_line_art(), _line_art(x=50), times,
                                   params={"steps": 1, "device": "cpu", "sketches": [sketch], "sketch_scale": 0.9})
    result = engine.interpolate(request)
    assert len(backend.calls) > 1
    with_ink = [i for i, c in enumerate(backend.calls) if np.count_nonzero(c["sketch_hints"])]
    assert 0 in with_ink and len(with_ink) >= 2  # the first pass and the later pass around t = 10/21
    assert all(c["sketch_scale"] == 0.9 and c["sketch_context"] == "text" for c in backend.calls)
    record = result.info["sketches"]
    assert record["scale"] == 0.9 and record["sketches"][0]["name"] == "mid.png"
    assert record["sketches"][0]["sha256"] == sketch.sha256
    assert {g["pass"] for g in record["sketches"][0]["guided"]} == set(with_ink)


def test_without_sketches_the_backend_gets_no_sketch_arguments():
    backend = RecordingBackend()
    ToonCrafterEngine(backend=backend).interpolate(
        InterpolationRequest(_line_art(), _line_art(x=50), [0.5], params={"steps": 1, "device": "cpu"}))
    assert backend.calls == [{}]


# ------------------------------------------------------------------------------- the real model

torch_needed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None or __import__("importlib").util.find_spec("open_clip") is None,
    reason="needs torch and open_clip")


@pytest.fixture(scope="module")
def tiny_model():
    from tooncrafter_studio.diffusion.checks.fill import fill_module
    from tooncrafter_studio.diffusion.nets.config import ToonCrafterConfig
    from tooncrafter_studio.diffusion.nets.model import build_model

    config = dataclasses.replace(ToonCrafterConfig.reduced(), latent_size=(8, 8))  # 64 x 64 pixels
    model = build_model(config, device="cpu")
    fill_module(model)
    return model


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    import torch

    from tooncrafter_studio.diffusion.nets.sketch_encoder import SketchEncoderConfig, build_sketch_encoder

    encoder = build_sketch_encoder(SketchEncoderConfig.reduced(), device="cpu")
    torch.manual_seed(3)
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("models") / "sketch_encoder.ckpt"
    torch.save({"state_dict": encoder.state_dict()}, path)
    return path


def _run(model, scale=None, sketches=(), encoder=None, times=(0.5,)):
    params = {"steps": 1, "device": "cpu", "sketches": list(sketches)}
    if scale is not None:
        params["sketch_scale"] = scale
    if encoder is not None:
        params["sketch_encoder"] = str(encoder)
    request = InterpolationRequest(_line_art(), _line_art(x=50), list(times), params=params, seed=11)
    return ToonCrafterEngine(model=model, trim_keys=False).interpolate(request)


@torch_needed
@pytest.mark.slow
def test_tiny_model_generates_with_a_sketch_and_scale_zero_changes_nothing(tiny_model, encoder_file):
    sketch = Sketch(8 / 15, _line_art(x=40), "pose.png")
    plain = _run(tiny_model, times=(8 / 15,))
    guided = _run(tiny_model, 1.5, [sketch], encoder_file, times=(8 / 15,))
    zero = _run(tiny_model, 0.0, [sketch], encoder_file, times=(8 / 15,))
    assert np.array_equal(zero.frames[0], plain.frames[0])
    assert not np.array_equal(guided.frames[0], plain.frames[0])
    record = guided.info["sketches"]
    assert record["sketches"][0]["guided"] == [{"pass": 0, "frame": 8, "frame_time": pytest.approx(8 / 15)}]
    assert record["encoder"]["name"] == "sketch_encoder.ckpt" and record["scale"] == 1.5
    assert "sketches" not in plain.info
    assert not hasattr(tiny_model, "sketch_encoder")  # the pipeline's component, never patched onto the model


@torch_needed
def test_a_missing_sketch_encoder_is_named(tiny_model, tmp_path):
    with pytest.raises(ModelError, match="sketch encoder"):
        _run(tiny_model, 0.6, [Sketch(0.5, _line_art())], tmp_path / "nowhere.ckpt")


def test_the_sketch_encoder_is_found_next_to_the_model_or_named(tmp_path):
    model = tmp_path / "models" / "model.ckpt"
    model.parent.mkdir()
    model.write_bytes(b"x")
    found, looked = sk.find_sketch_encoder(None, model)
    assert found is None and str(model.parent) in looked
    (model.parent / "sketch_encoder-fp16.safetensors").write_bytes(b"x")
    assert sk.find_sketch_encoder(None, model)[0] == model.parent / "sketch_encoder-fp16.safetensors"
    (model.parent / "sketch_encoder.safetensors").write_bytes(b"x")
    assert sk.find_sketch_encoder(None, model)[0].name == "sketch_encoder.safetensors"
    assert sk.find_sketch_encoder(tmp_path / "other.ckpt", model)[0] is None  # explicit: that file or nothing
