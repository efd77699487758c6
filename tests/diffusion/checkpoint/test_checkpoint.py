"""Loading weight files safely and strictly: wrappers, safetensors, truncated files, other
architectures, malicious pickles (never executed), conversion and identification."""

from __future__ import annotations

import json
import math
import pickle
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import Cancelled, ModelError  # noqa: E402
from tooncrafter_studio.core.progress import CancelToken  # noqa: E402
from tooncrafter_studio.diffusion.weights.checkpoint import (  # noqa: E402
    CheckpointMismatch,
    ExpectedKeys,
    WeightFile,
    convert,
    describe_architecture,
    file_sha256,
    identify,
    load_into_model,
    load_model,
    load_state_dict,
)

MANIFEST = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "tooncrafter_512_keys.json"


def _states_equal(model, state):
    loaded = model.state_dict()
    return all(torch.equal(loaded[k], v) for k, v in state.items())


def test_lightning_ckpt_loads_strictly_into_a_meta_model(reduced_ckpt, reduced_state, reduced_config):
    model = load_model(reduced_ckpt, reduced_config)
    assert _states_equal(model, reduced_state)
    assert not any(t.device.type == "meta" for t in list(model.parameters()) + list(model.buffers()))
    assert WeightFile(reduced_ckpt).layout == "lightning"


def test_plain_and_deepspeed_layouts_load(tmp_path, reduced_state, reduced_expected):
    plain = tmp_path / "plain.ckpt"
    torch.save(reduced_state, plain)
    deepspeed = tmp_path / "ds.pt"
    torch.save({"module": {"_forward_module." + k: v for k, v in reduced_state.items()}}, deepspeed)
    for path, layout in ((plain, "plain"), (deepspeed, "deepspeed")):
        state = load_state_dict(path, reduced_expected)
        assert WeightFile(path).layout == layout
        assert list(state) == list(reduced_state)
        assert all(torch.equal(state[k], reduced_state[k]) for k in state)


def test_legacy_framestride_name_is_renamed(tmp_path, reduced_state, reduced_expected):
    old = {k.replace("fps_embedding", "framestride_embed"): v for k, v in reduced_state.items()}
    assert old.keys() != reduced_state.keys()
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": old}, path)
    assert load_state_dict(path, reduced_expected).keys() == reduced_state.keys()


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path, reduced_state, reduced_expected):
    state = dict(reduced_state)
    state.pop("model.diffusion_model.out.2.weight")
    state["model.diffusion_model.extra.weight"] = torch.zeros(2)
    state["image_proj_model.latents"] = torch.zeros(1, 3, 5)
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict(path, reduced_expected)
    message = str(info.value)
    assert "bad.ckpt" in message
    assert "model.diffusion_model.out.2.weight" in message
    assert "model.diffusion_model.extra.weight" in message
    assert "image_proj_model.latents is [1, 3, 5] in the file" in message
    report = info.value.report
    assert report.missing == ["model.diffusion_model.out.2.weight"]
    assert report.unexpected == ["model.diffusion_model.extra.weight"]
    assert [k for k, _, _ in report.mismatched] == ["image_proj_model.latents"]


def test_wrong_architectures_are_recognised(tmp_path, reduced_state, reduced_expected):
    sd_like = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3),
               "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(8, 4),
               "first_stage_model.decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}
    dynamicrafter = {k: v for k, v in reduced_state.items() if "attn_refinement" not in k and "time_stack" not in k}
    pruned = {k: v for k, v in reduced_state.items() if not k.startswith("cond_stage_model.")}
    cases = {"sd.ckpt": (sd_like, "Stable Diffusion"), "dc.ckpt": (dynamicrafter, "DynamiCrafter"),
             "pruned.ckpt": (pruned, "without the CLIP text encoder")}
    for name, (state, words) in cases.items():
        path = tmp_path / name
        torch.save({"state_dict": state}, path)
        with pytest.raises(CheckpointMismatch, match=words) as info:
            load_state_dict(path, reduced_expected)
        assert info.value.report.missing
    assert "not a latent-diffusion" in describe_architecture(["encoder.weight"])
    assert "Stable Video" in describe_architecture(["conditioner.embedders.0.x"])


def test_truncated_files_are_refused_clearly(tmp_path, reduced_ckpt, reduced_expected):
    data = reduced_ckpt.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        WeightFile(cut)
    converted = tmp_path / "full.safetensors"
    convert(reduced_ckpt, converted, "fp16", reduced_expected)
    raw = converted.read_bytes()
    short = tmp_path / "short.safetensors"
    short.write_bytes(raw[:-1000])
    with pytest.raises(ModelError, match="truncated"):
        WeightFile(short)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="truncated or empty"):
        WeightFile(empty)
    garbage = tmp_path / "photo.ckpt"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5000))
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        WeightFile(garbage)
    with pytest.raises(ModelError, match="does not exist"):
        WeightFile(tmp_path / "nope.ckpt")


class _Payload:
    """Pickles to a call of os.system that would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [_Payload, _EvalPayload])
def test_malicious_pickles_are_refused_and_never_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    zip_file = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(2)}, "x": payload(marker)}, zip_file)
    legacy = tmp_path / "evil_legacy.ckpt"
    with open(legacy, "wb") as handle:
        pickle.dump({"state_dict": {}, "x": payload(marker)}, handle)
    for path in (zip_file, legacy):
        with pytest.raises(ModelError, match="refused") as info:
            WeightFile(path)
        assert "not executed" in str(info.value)
        with pytest.raises(ModelError):
            identify(path)
    assert not marker.exists()


def test_lightning_bookkeeping_objects_are_ignored_without_import(tmp_path, reduced_state, reduced_expected):
    name = "pytorch_lightning.fake_parsing"
    module = types.ModuleType(name)

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = name
    AttributeDict.__qualname__ = "AttributeDict"
    module.AttributeDict = AttributeDict
    parent = types.ModuleType("pytorch_lightning")
    added = [n for n in ("pytorch_lightning", name) if n not in sys.modules]
    sys.modules.setdefault("pytorch_lightning", parent)
    sys.modules[name] = module
    try:
        hp = AttributeDict(lr=1e-4)
        path = tmp_path / "lightning.ckpt"
        torch.save({"state_dict": reduced_state, "hyper_parameters": hp, "epoch": 2}, path)
    finally:
        for n in added:
            del sys.modules[n]
    state = load_state_dict(path, reduced_expected)
    assert state.keys() == reduced_state.keys()
    assert name not in sys.modules


def test_convert_drops_unused_keys_keeps_buffers_fp32_and_loads(tmp_path, reduced_ckpt, reduced_state,
                                                                reduced_config, reduced_expected):
    events = []
    out = tmp_path / "m.safetensors"
    info = convert(reduced_ckpt, out, "fp16", reduced_expected, progress=events.append)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert info.format == "safetensors" and info.metadata["dtype"] == "fp16"
    assert int(info.metadata["dropped_unused_keys"]) == len(reduced_expected.unused) > 0
    assert events[0].stage == "convert" and events[-1].done == events[-1].total == info.tensors
    weights = WeightFile(out)
    assert not set(weights.keys()) & reduced_expected.unused
    assert weights.dtype("alphas_cumprod") == torch.float32
    assert weights.dtype("model.diffusion_model.out.2.weight") == torch.float16
    # the standard safetensors reader accepts our streamed file
    from safetensors.torch import load_file

    assert load_file(out).keys() == set(weights.keys())

    model = load_model(out, reduced_config)
    loaded = model.state_dict()
    for key, value in reduced_state.items():
        if key in reduced_expected.unused:
            assert torch.count_nonzero(loaded[key]) == 0 or "." not in key
        elif "." not in key:
            assert torch.equal(loaded[key], value)  # schedule buffers exact
        else:
            assert torch.equal(loaded[key], value.half().float()), key
    # dropped schedule buffers get their computed values back
    assert torch.equal(loaded["betas"], reduced_state["betas"])


def test_convert_bf16_and_fp32_and_refuses_bad_targets(tmp_path, reduced_ckpt, reduced_expected):
    out = tmp_path / "b.safetensors"
    convert(reduced_ckpt, out, "bf16", reduced_expected, drop_unused=False)
    weights = WeightFile(out)
    assert weights.dtype("model.diffusion_model.out.2.weight") == torch.bfloat16
    assert len(weights.keys()) == len(reduced_expected.shapes)
    with pytest.raises(ModelError, match="dtype"):
        convert(reduced_ckpt, tmp_path / "c.safetensors", "int8", reduced_expected)
    with pytest.raises(ModelError, match="safetensors"):
        convert(reduced_ckpt, tmp_path / "c.ckpt", "fp16", reduced_expected)


def test_cancelled_convert_leaves_no_file(tmp_path, reduced_ckpt, reduced_expected):
    token = CancelToken()
    seen = []

    def progress(event):
        seen.append(event.done)
        if event.done == 10:
            token.cancel()

    out = tmp_path / "never.safetensors"
    with pytest.raises(Cancelled):
        convert(reduced_ckpt, out, "fp16", reduced_expected, progress=progress, cancel=token)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert max(seen) == 10


def test_identify_is_cheap_and_fingerprints_differ(tmp_path, reduced_ckpt, reduced_state):
    info = identify(reduced_ckpt)
    assert info.tensors == len(reduced_state)
    assert info.elements == sum(v.numel() for v in reduced_state.values())
    names = [c.name for c in info.components]
    assert names == ["UNet", "VAE", "text encoder (CLIP)", "image encoder (CLIP)", "Resampler", "schedule buffers"]
    assert info.components[0].elements == 14_567_972  # reduced UNet (vectors/README §2)
    assert info.dtypes == {"float32": len(reduced_state)}
    assert info.architecture == "a ToonCrafter checkpoint"
    assert identify(reduced_ckpt).fingerprint == info.fingerprint
    other = tmp_path / "other.ckpt"
    changed = dict(reduced_state)
    changed["model.diffusion_model.out.2.bias"] = torch.zeros(5)
    torch.save({"state_dict": changed}, other)
    assert identify(other).fingerprint != info.fingerprint
    (tmp_path / "b").mkdir()
    same_layout = tmp_path / "b" / "model.ckpt"  # same name: torch.save stores it inside the archive
    values = {k: v + 1.0 if "." in k else v for k, v in reduced_state.items()}  # another fine-tune, same layout
    torch.save({"state_dict": values, "epoch": 7, "global_step": 1000}, same_layout)
    assert same_layout.stat().st_size == reduced_ckpt.stat().st_size
    assert identify(same_layout).fingerprint != info.fingerprint
    import hashlib

    assert file_sha256(reduced_ckpt) == hashlib.sha256(reduced_ckpt.read_bytes()).hexdigest()


def test_512_expected_keys_equal_the_manifest():
    if not MANIFEST.exists():
        pytest.skip("manifest not available")
    ours = ExpectedKeys.for_config()
    manifest = ExpectedKeys.from_manifest(MANIFEST)
    assert list(ours.shapes) == list(manifest.shapes)
    assert ours.shapes == manifest.shapes
    assert ours.unused == manifest.unused
    entries = json.loads(MANIFEST.read_text())["entries"]
    dropped = sum(e["numel"] for e in entries if not e["used_at_inference"] and "." in e["key"])
    assert dropped == sum(math.prod(manifest.shapes[k]) for k in manifest.unused if "." in k) == 66_681_366


def test_a_512_checkpoint_on_meta_is_checked_without_data(tmp_path):
    """The real key set passes the check; built from the manifest on meta, no 10 GB needed."""
    if not MANIFEST.exists():
        pytest.skip("manifest not available")
    expected = ExpectedKeys.from_manifest(MANIFEST)
    from tooncrafter_studio.diffusion.weights.checkpoint import compare_keys

    report = compare_keys(expected.shapes, ExpectedKeys.for_config())
    assert report.ok and not report.dropped_unused
    report = compare_keys(expected.used, ExpectedKeys.for_config())
    assert report.ok and len(report.dropped_unused) == 34


def test_load_into_model_casts_to_the_requested_dtype(reduced_ckpt, reduced_config):
    from tooncrafter_studio.diffusion.nets.model import build_model

    model = build_model(reduced_config, device="meta", dtype=torch.bfloat16)
    load_into_model(model, reduced_ckpt, dtype=torch.bfloat16)
    assert model.unet.out[2].weight.dtype == torch.bfloat16
    assert model.alphas_cumprod.dtype == torch.float32
