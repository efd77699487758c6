"""The model container: checkpoint-shaped state dict, configs, fill rule over every component."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import ModelError  # noqa: E402
from tooncrafter_studio.diffusion import ToonCrafterConfig, build_model  # noqa: E402
from tooncrafter_studio.diffusion.checks.fill import fill_module  # noqa: E402
from tooncrafter_studio.diffusion.checks.verify import compare  # noqa: E402
from tooncrafter_studio.diffusion.nets.config import REDUCED_PARAMS  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
VECTORS = REFERENCE / "vectors"

# configs/inference_512_v1.0.yaml `model.params` (use_checkpoint as the scripts set it).
ORIGINAL_512_PARAMS = {
    "rescale_betas_zero_snr": True, "parameterization": "v", "linear_start": 0.00085, "linear_end": 0.012,
    "num_timesteps_cond": 1, "timesteps": 1000, "first_stage_key": "video", "cond_stage_key": "caption",
    "cond_stage_trainable": False, "conditioning_key": "hybrid", "image_size": [40, 64], "channels": 4,
    "scale_by_std": False, "scale_factor": 0.18215, "use_ema": False, "uncond_type": "empty_seq",
    "use_dynamic_rescale": True, "base_scale": 0.7, "fps_condition_type": "fps", "perframe_ae": True,
    "loop_video": True,
    "unet_config": {"target": "lvdm.modules.networks.openaimodel3d.UNetModel", "params": {
        "in_channels": 8, "out_channels": 4, "model_channels": 320, "attention_resolutions": [4, 2, 1],
        "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4], "dropout": 0.1, "num_head_channels": 64,
        "transformer_depth": 1, "context_dim": 1024, "use_linear": True, "use_checkpoint": False,
        "temporal_conv": True, "temporal_attention": True, "temporal_selfatt_only": True,
        "use_relative_position": False, "use_causal_attention": False, "temporal_length": 16,
        "addition_attention": True, "image_cross_attention": True, "default_fs": 24, "fs_condition": True}},
    "first_stage_config": {"target": "lvdm.models.autoencoder.AutoencoderKL_Dualref", "params": {
        "embed_dim": 4, "monitor": "val/rec_loss",
        "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                     "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                     "dropout": 0.0},
        "lossconfig": {"target": "torch.nn.Identity"}}},
    "cond_stage_config": {"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
                          "params": {"freeze": True, "layer": "penultimate"}},
    "img_cond_stage_config": {"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2",
                              "params": {"freeze": True}},
    "image_proj_stage_config": {"target": "lvdm.modules.encoders.resampler.Resampler", "params": {
        "dim": 1024, "depth": 4, "dim_head": 64, "heads": 12, "num_queries": 16, "embedding_dim": 1280,
        "output_dim": 1024, "ff_mult": 4, "video_length": 16}},
}


def _json(path: Path) -> dict:
    if not path.exists():
        pytest.skip(f"{path.name} not available")
    return json.loads(path.read_text())


def test_importing_the_package_does_not_import_torch():
    code = "import sys, tooncrafter_studio.diffusion as d; assert callable(d.__getattr__); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_default_model_on_meta_has_exactly_the_manifest_keys_and_shapes():
    manifest = _json(REFERENCE / "tooncrafter_512_keys.json")["entries"]
    start = time.perf_counter()
    model = build_model()
    assert time.perf_counter() - start < 30  # "in seconds" (well under on an idle machine)
    state = model.state_dict()
    expected = {e["key"]: tuple(e["shape"]) for e in manifest}
    ours = {k: tuple(v.shape) for k, v in state.items()}
    assert len(expected) == 2668
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: s for k, s in ours.items() if expected[k] != s} == {}
    assert sum(v.numel() for v in state.values()) == 2_625_430_449
    assert all(v.device.type == "meta" and v.dtype == torch.float32 for v in state.values())
    for name in ("model.diffusion_model", "first_stage_model", "cond_stage_model", "embedder", "image_proj_model"):
        model.get_submodule(name)
    assert not model.training


def test_unused_keys_are_the_manifests_unused_entries():
    manifest = _json(REFERENCE / "tooncrafter_512_keys.json")["entries"]
    model = build_model()
    expected = {e["key"] for e in manifest if not e["used_at_inference"]}
    assert set(model.unused_keys()) == expected
    state = model.state_dict()
    assert sum(state[k].numel() for k in expected if "." in k) == 66_681_366


def test_original_512_params_give_the_default_config():
    assert ToonCrafterConfig.from_original_params(ORIGINAL_512_PARAMS) == ToonCrafterConfig.default()
    wrapped = {"model": {"target": "lvdm.models.ddpm3d.LatentVisualDiffusion", "params": ORIGINAL_512_PARAMS}}
    assert ToonCrafterConfig.from_original_params(wrapped) == ToonCrafterConfig.default()
    assert ToonCrafterConfig.default().context_tokens == 333


@pytest.mark.parametrize("change, message", [
    ({"conditioning_key": "crossattn"}, "conditioning_key"),
    ({"perframe_ae": False}, "perframe_ae"),
    ({"some_new_option": 1}, "some_new_option"),
])
def test_unsupported_top_level_options_are_refused(change, message):
    with pytest.raises(ModelError, match=message):
        ToonCrafterConfig.from_original_params({**REDUCED_PARAMS, **change})


def test_components_that_do_not_fit_together_are_refused():
    params = json.loads(json.dumps(REDUCED_PARAMS))
    params["image_proj_stage_config"]["params"]["output_dim"] = 32
    with pytest.raises(ModelError, match="output_dim"):
        ToonCrafterConfig.from_original_params(params)


def test_half_precision_build_keeps_float32_schedule_buffers():
    model = build_model(ToonCrafterConfig.reduced(), device="cpu", dtype=torch.float16)
    assert model.unet.out[2].weight.dtype == torch.float16
    assert model.image_proj_model.latents.dtype == torch.float16
    assert model.alphas_cumprod.dtype == torch.float32
    assert float(model.alphas_cumprod[-1]) == 0.0 and float(model.scale_arr[0]) == 1.0


@pytest.fixture(scope="module")
def filled_reduced_model():
    model = build_model(ToonCrafterConfig.reduced(), device="cpu")
    assert fill_module(model) == 2033
    return model


def test_fill_rule_on_the_reduced_model_matches_all_2033_checksums(filled_reduced_model):
    table = _json(VECTORS / "fill_checksums_reduced.json")
    state = filled_reduced_model.state_dict()
    dotted = {k: v for k, v in state.items() if "." in k}
    assert sorted(dotted) == sorted(table)
    for key, (shape, total, total_abs, first) in table.items():
        value = dotted[key].double()
        assert list(value.shape) == shape, key
        assert value.sum().item() == pytest.approx(total, abs=1e-9 * total_abs + 1e-12), key
        assert value.abs().sum().item() == pytest.approx(total_abs, rel=1e-9), key
        assert value.flatten()[0].item() == pytest.approx(first, rel=1e-7, abs=1e-12), key


def test_reduced_model_schedule_buffers_equal_the_stored_ones(filled_reduced_model):
    path = VECTORS / "schedule.npz"
    if not path.exists():
        pytest.skip("schedule.npz not available")
    z = np.load(path)
    for name, buffer in filled_reduced_model.named_buffers():
        if "." not in name:
            assert np.array_equal(buffer.numpy(), z[f"buffer/{name}"]), name


def test_the_hybrid_wrapper_reproduces_unet_reduced(filled_reduced_model):
    path = VECTORS / "unet_reduced.npz"
    if not path.exists():
        pytest.skip("unet_reduced.npz not available")
    z = np.load(path)
    t = {k: torch.from_numpy(z[k]) for k in ("x", "c_concat", "t", "context", "fs")}
    with torch.inference_mode():
        out = filled_reduced_model.model(t["x"], t["t"], t["c_concat"], t["context"], t["fs"])
    result = compare("out", out, z["out"])
    assert result.ok, result
