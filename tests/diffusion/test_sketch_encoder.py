"""The sketch encoder: key layout of the published file, safe strict loading (plain, wrapped,
fp16 safetensors), wrong files named, and the injection into the UNet (scale 0 = unguided bit for
bit, batch-major cond/uncond = two single calls)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sketch_helpers import REFERENCE  # noqa: E402

from tooncrafter_studio.core.errors import InputError, ModelError  # noqa: E402
from tooncrafter_studio.diffusion.nets.model import DiffusionWrapper  # noqa: E402
from tooncrafter_studio.diffusion.nets.sketch_encoder import (  # noqa: E402
    SketchEncoderConfig,
    build_sketch_encoder,
)
from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig  # noqa: E402
from tooncrafter_studio.diffusion.sampling.sketch_guidance import SketchGuidance  # noqa: E402
from tooncrafter_studio.diffusion.weights import checkpoint  # noqa: E402
from tooncrafter_studio.diffusion.weights.checkpoint import expected_sketch_keys, load_sketch_encoder  # noqa: E402

REDUCED = SketchEncoderConfig.reduced()


def _random_encoder(seed: int = 0):
    torch.manual_seed(seed)
    encoder = build_sketch_encoder(REDUCED, device="cpu")
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.05)
    return encoder


def test_full_encoder_has_the_published_keys_and_shapes():
    path = REFERENCE / "sketch_encoder_keys.json"
    if not path.exists():
        pytest.skip("sketch_encoder_keys.json not available")
    entries = json.loads(path.read_text())["entries"]
    state = build_sketch_encoder().state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(e["key"], e["shape"]) for e in entries]
    assert sum(v.numel() for v in state.values()) == 364_227_952


def test_reduced_encoder_size_and_residual_widths():
    encoder = build_sketch_encoder(REDUCED)
    assert len(encoder.state_dict()) == 340
    assert sum(p.numel() for p in encoder.parameters()) == 4_028_944
    assert REDUCED.residual_channels() == [32, 32, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]


@pytest.mark.parametrize("layout", ["plain", "state_dict", "fp16_safetensors"])
def test_loads_plain_wrapped_and_fp16_safetensors_key_for_key(tmp_path, layout):
    encoder = _random_encoder()
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    ckpt = tmp_path / "sketch_encoder.ckpt"
    torch.save(state if layout == "plain" else {"state_dict": state, "epoch": 3}, ckpt)
    path = ckpt
    if layout == "fp16_safetensors":
        path = tmp_path / "sketch_encoder-fp16.safetensors"
        checkpoint.convert(ckpt, path, "fp16", expected=expected_sketch_keys(REDUCED))
        assert checkpoint.identify(path).architecture == "a ToonCrafter sketch encoder (sketch_encoder.ckpt)"
    loaded = load_sketch_encoder(path, REDUCED)
    for key, value in loaded.state_dict().items():
        want = state[key].half().float() if layout == "fp16_safetensors" else state[key]
        assert torch.equal(value, want), key


def test_wrong_files_are_refused_by_name(tmp_path):
    state = _random_encoder().state_dict()
    short = dict(state)
    del short["zero_convs.3.0.weight"]
    torch.save(short, tmp_path / "short.ckpt")
    with pytest.raises(checkpoint.CheckpointMismatch, match="zero_convs.3.0.weight") as info:
        load_sketch_encoder(tmp_path / "short.ckpt", REDUCED)
    assert "sketch encoder" in str(info.value)
    torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(3)}, tmp_path / "model.ckpt")
    with pytest.raises(checkpoint.CheckpointMismatch, match="sketch encoder"):
        load_sketch_encoder(tmp_path / "model.ckpt", REDUCED)
    # The full-size encoder refuses the reduced file (wrong shapes named).
    torch.save(state, tmp_path / "reduced.ckpt")
    with pytest.raises(checkpoint.CheckpointMismatch, match="wrong shape"):
        load_sketch_encoder(tmp_path / "reduced.ckpt")


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "sketch_encoder.ckpt"
    with open(path, "wb") as fh:
        pickle.dump({"x": Evil()}, fh, protocol=2)
    with pytest.raises(ModelError):
        load_sketch_encoder(path, REDUCED)


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(1)
    with torch.device("meta"):
        unet = UNet3D(UNetConfig.reduced())
    unet = unet.to_empty(device="cpu").eval().requires_grad_(False)
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(0, 0.05)
    return DiffusionWrapper(unet)


def _inputs(batch: int, frames: int = 4):  # 4 frames: the UNet takes any count; 4x cheaper
    g = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 4, frames, 8, 16, generator=g)
    c_concat = torch.randn(batch, 4, frames, 8, 16, generator=g)
    context = torch.randn(batch, 77 + 16 * frames, 64, generator=g)
    t = torch.full((batch,), 421, dtype=torch.long)
    fs = torch.full((batch,), 10, dtype=torch.long)
    hints = (torch.rand(frames, 1, 64, 128, generator=g) > 0.9).float()
    return x, c_concat, context, t, fs, hints


def test_scale_zero_equals_the_unguided_unet_bit_for_bit(tiny_unet):
    x, c_concat, context, t, fs, hints = _inputs(2)
    guidance = SketchGuidance(_random_encoder(), hints, 0.0, "text")
    with torch.inference_mode():
        plain = tiny_unet(x, t, c_concat, context, fs)
        residuals = guidance.residuals(x, t, context)
        zero = tiny_unet(x, t, c_concat, context, fs, control=residuals)
        guided = tiny_unet(x, t, c_concat, context, fs,
                           control=SketchGuidance(guidance.encoder, hints, 1.0).residuals(x, t, context))
    assert all(torch.count_nonzero(r) == 0 for r in residuals)
    assert torch.equal(zero, plain)
    assert not torch.allclose(guided, plain, atol=1e-3)  # the control does reach the output


@pytest.mark.parametrize("mode", ["text", "all"])
def test_batched_cond_uncond_is_batch_major_and_equals_two_single_calls(tiny_unet, mode):
    x, c_concat, context, t, fs, hints = _inputs(2)
    x[1], c_concat[1] = x[0], c_concat[0]  # the CFG pair: same latent, two contexts
    guidance = SketchGuidance(_random_encoder(), hints, 0.6, mode)
    with torch.inference_mode():
        both = tiny_unet(x, t, c_concat, context, fs, control=guidance.residuals(x, t, context))
        rows = [tiny_unet(x[i:i + 1], t[i:i + 1], c_concat[i:i + 1], context[i:i + 1], fs[i:i + 1],
                          control=guidance.residuals(x[i:i + 1], t[i:i + 1], context[i:i + 1])) for i in range(2)]
    single = torch.cat(rows)
    assert (both - single).abs().max() <= 1e-5 * single.abs().max()


def test_blank_frames_still_get_residuals_and_context_modes_differ():
    encoder = _random_encoder()
    x, _, context, t, _, _ = _inputs(1)
    blank = torch.zeros(x.shape[2], 1, 64, 128)
    with torch.inference_mode():
        text = SketchGuidance(encoder, blank, 1.0, "text").residuals(x, t, context)
        every = SketchGuidance(encoder, blank, 1.0, "all").residuals(x, t, context)
    assert all(torch.count_nonzero(r) > 0 for r in text)  # the paper's "empty image": not zero-gated
    assert not torch.allclose(text[5], every[5])


def test_guidance_refuses_bad_settings():
    encoder = build_sketch_encoder(REDUCED)
    hints = np.zeros((16, 1, 64, 128), np.float32)
    with pytest.raises(InputError, match="between 0 and 1.5"):
        SketchGuidance(encoder, hints, 1.6)
    with pytest.raises(InputError, match="text, all"):
        SketchGuidance(encoder, hints, 0.6, "image")
    guidance = SketchGuidance(encoder, hints[:15], 0.6)
    with pytest.raises(InputError, match="15 sketch hints for 16 frames"):
        guidance.residuals(torch.zeros(1, 4, 16, 8, 16), torch.tensor([1]), torch.zeros(1, 333, 64))


def test_models_check_and_convert_recognise_the_sketch_encoder(tmp_path, capsys):
    from tooncrafter_studio.cli.main import run_cli

    torch.save(_random_encoder().state_dict(), tmp_path / "sketch_encoder.ckpt")
    out = tmp_path / "sketch_encoder-fp16.safetensors"
    assert run_cli(["models", "convert", str(tmp_path / "sketch_encoder.ckpt"), "--out", str(out),
                    "--config", "reduced"]) == 0
    assert run_cli(["models", "check", str(out), "--config", "reduced", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["architecture"] == "a ToonCrafter sketch encoder (sketch_encoder.ckpt)"
    assert report["tensors"] == 340 and report["dtypes"] == {"float16": 340}
    # the full-size check names the wrong shapes of this small file
    assert run_cli(["models", "check", str(out)]) != 0
    assert "ToonCrafter sketch encoder" in capsys.readouterr().err
