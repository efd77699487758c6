"""Configs read the original YAML params; the default modules have exactly the checkpoint's keys and
shapes under their prefixes; the unused-at-inference keys agree with the manifest's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tooncrafter_studio.core.errors import ModelError  # noqa: E402
from tooncrafter_studio.diffusion.nets.autoencoder import Autoencoder, AutoencoderConfig  # noqa: E402
from tooncrafter_studio.diffusion.nets.clip import (  # noqa: E402
    TC_TINY,
    VIT_H_14,
    ImageEmbedder,
    TextEncoder,
    TextEncoderConfig,
    VisionEncoderConfig,
)
from tooncrafter_studio.diffusion.nets.resampler import Resampler, ResamplerConfig  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "tooncrafter_512_keys.json"

# vectors/README §2, the reduced model's `params` blocks.
REDUCED_FIRST_STAGE = {
    "target": "lvdm.models.autoencoder.AutoencoderKL_Dualref",
    "params": {
        "embed_dim": 4, "monitor": "val/rec_loss",
        "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                     "ch": 32, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                     "dropout": 0.0},
        "lossconfig": {"target": "torch.nn.Identity"},
    },
}
REDUCED_RESAMPLER = {"dim": 64, "depth": 2, "dim_head": 16, "heads": 3, "num_queries": 16, "embedding_dim": 64,
                     "output_dim": 64, "ff_mult": 4, "video_length": 16}


def _count(module) -> int:
    return sum(t.numel() for t in module.state_dict().values())


def _meta(factory):
    with torch.device("meta"):
        return factory()


def test_reduced_configs_from_params_and_parameter_counts():
    ae_cfg = AutoencoderConfig.from_params(REDUCED_FIRST_STAGE)
    assert ae_cfg == AutoencoderConfig.reduced()
    assert ae_cfg.ch == 32 and ae_cfg.ch_mult == (1, 2, 4, 4) and ae_cfg.attn_resolutions == ()
    text_cfg = TextEncoderConfig.from_params({"freeze": True, "layer": "penultimate", "arch": "TC-tiny"})
    assert text_cfg == TextEncoderConfig.reduced() and text_cfg.layers_run == 2
    vis_cfg = VisionEncoderConfig.from_params({"target": "x.FrozenOpenCLIPImageEmbedderV2",
                                               "params": {"freeze": True, "arch": "TC-tiny"}})
    assert vis_cfg == VisionEncoderConfig.reduced() and vis_cfg.arch.vision_tokens == 257
    res_cfg = ResamplerConfig.from_params(REDUCED_RESAMPLER)
    assert res_cfg == ResamplerConfig.reduced()
    # Counts from vectors/README §2.
    assert _count(_meta(lambda: Autoencoder(ae_cfg))) == 6_670_323
    assert _count(_meta(lambda: TextEncoder(text_cfg))) == 3_321_217
    assert _count(_meta(lambda: ImageEmbedder(vis_cfg))) == 3_379_713
    assert _count(_meta(lambda: Resampler(res_cfg))) == 115_712


def test_full_configs_are_the_defaults():
    assert AutoencoderConfig.from_params({"embed_dim": 4, "ddconfig": {"ch": 128, "ch_mult": [1, 2, 4, 4]}}) == \
        AutoencoderConfig()
    assert TextEncoderConfig.from_params({"freeze": True, "layer": "penultimate"}) == TextEncoderConfig()
    assert VisionEncoderConfig.from_params({"freeze": True}).arch == VIT_H_14
    assert ResamplerConfig.from_params({"dim": 1024, "depth": 4, "dim_head": 64, "heads": 12, "num_queries": 16,
                                        "embedding_dim": 1280, "output_dim": 1024, "ff_mult": 4,
                                        "video_length": 16}) == ResamplerConfig()
    # An architecture given as an open_clip JSON dict.
    cfg = TextEncoderConfig.from_params({"arch": "TC-tiny", "arch_config": TC_TINY.open_clip_config(),
                                         "layer": "penultimate"})
    assert cfg.arch == TC_TINY


@pytest.mark.parametrize(
    "factory, params",
    [
        (TextEncoderConfig.from_params, {"layer": "pooled"}),
        (TextEncoderConfig.from_params, {"arch": "ViT-bigG-14"}),
        (TextEncoderConfig.from_params, {"arch": "ViT-H-14", "frobnicate": 1}),
        (VisionEncoderConfig.from_params, {"antialias": False}),
        (ResamplerConfig.from_params, {"apply_pos_emb": True}),
        (ResamplerConfig.from_params, {"dim": 64, "unknown_option": 3}),
        (AutoencoderConfig.from_params, {"ddconfig": {"attn_resolutions": [32]}}),
        (AutoencoderConfig.from_params, {"ddconfig": {"double_z": False}}),
    ],
)
def test_unsupported_options_are_refused(factory, params):
    with pytest.raises(ModelError):
        factory(params)


@pytest.fixture(scope="module")
def manifest():
    if not MANIFEST.exists():
        pytest.skip("key manifest not available")
    return json.loads(MANIFEST.read_text())["entries"]


COMPONENTS = [
    ("first_stage_model.", Autoencoder),
    ("cond_stage_model.", TextEncoder),
    ("embedder.", ImageEmbedder),
    ("image_proj_model.", Resampler),
]


@pytest.mark.parametrize("prefix, cls", COMPONENTS, ids=[p for p, _ in COMPONENTS])
def test_default_modules_have_exactly_the_checkpoint_keys(manifest, prefix, cls):
    module = _meta(cls)
    ours = {prefix + k: list(v.shape) for k, v in module.state_dict().items()}
    theirs = {e["key"]: e["shape"] for e in manifest if e["key"].startswith(prefix)}
    assert sorted(set(ours) - set(theirs)) == []
    assert sorted(set(theirs) - set(ours)) == []
    assert {k for k in ours if ours[k] != theirs[k]} == set()


def test_unused_keys_match_the_manifest(manifest):
    unused = {e["key"] for e in manifest if not e["used_at_inference"] and "." in e["key"]}
    ours = set()
    for prefix, cls in COMPONENTS:
        module = _meta(cls)
        keys = module.unused_keys()
        assert set(keys) <= set(module.state_dict())
        ours |= {prefix + k for k in keys}
    assert ours == {k for k in unused if not k.startswith("model.diffusion_model.")}
    numel = {e["key"]: e["numel"] for e in manifest}
    # The parameters a conversion may drop (the 9 unused schedule buffers are 9,000 values more).
    assert sum(numel[k] for k in ours) == 66_681_366
