"""The UNet's parameter names and shapes are the checkpoint's (`model.diffusion_model.*`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import ModelError  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet import REDUCED_UNET_PARAMS, UNet3D, UNetConfig  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
MANIFEST = REFERENCE / "tooncrafter_512_keys.json"
PREFIX = "model.diffusion_model."


def _manifest_unet() -> dict[str, tuple[int, ...]]:
    if not MANIFEST.exists():
        pytest.skip("reference manifest not available")
    entries = json.loads(MANIFEST.read_text())["entries"]
    return {e["key"][len(PREFIX):]: tuple(e["shape"]) for e in entries if e["key"].startswith(PREFIX)}


def test_default_unet_on_meta_has_exactly_the_checkpoint_keys_and_shapes():
    start = time.perf_counter()
    with torch.device("meta"):
        unet = UNet3D()
    assert time.perf_counter() - start < 10
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    expected = _manifest_unet()
    assert len(expected) == 1516
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: s for k, s in ours.items() if expected[k] != s} == {}
    # Registration order is the checkpoint's order too (handy when streaming a conversion).
    assert list(ours) == list(expected)
    assert sum(v.numel() for v in unet.state_dict().values()) == 1_438_854_980
    assert all(p.device.type == "meta" for p in unet.parameters())


def test_reduced_config_reads_the_original_yaml_params_and_counts_match_the_readme():
    cfg = UNetConfig.from_params(REDUCED_UNET_PARAMS)
    assert cfg.model_channels == 32 and cfg.context_dim == 64 and cfg.channel_mult == (1, 2, 4, 4)
    assert cfg.heads_for(32) == (2, 16) and cfg.heads_for(128) == (8, 16)
    with torch.device("meta"):
        unet = UNet3D(cfg)
    assert sum(p.numel() for p in unet.parameters()) == 14_567_972
    # A {target, params} block is accepted as well.
    assert UNetConfig.from_params({"target": "x.UNetModel", "params": REDUCED_UNET_PARAMS}) == cfg


@pytest.mark.parametrize("option, value", [("use_linear", False), ("use_scale_shift_norm", True),
                                           ("use_relative_position", True), ("no_such_option", 1)])
def test_unsupported_or_unknown_options_are_refused_by_name(option, value):
    with pytest.raises(ModelError, match=option):
        UNetConfig.from_params({**REDUCED_UNET_PARAMS, option: value})


def test_feature_flags_remove_their_layers():
    cfg = UNetConfig.from_params({**REDUCED_UNET_PARAMS, "temporal_conv": False, "addition_attention": False,
                                  "image_cross_attention": False, "fs_condition": False})
    with torch.device("meta"):
        keys = UNet3D(cfg).state_dict().keys()
    assert not any("temopral_conv" in k or k.startswith("init_attn") or "_ip." in k or "fps_embedding" in k
                   for k in keys)
