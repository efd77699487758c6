"""The UNet reproduces the original's numbers (vectors/README §3): output, default fs, the
non-per-frame context branch and every probe, within 1e-5 of max |reference|."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.diffusion.checks import verify_unet  # noqa: E402
from tooncrafter_studio.diffusion.checks.fill import fill_tensor  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet import UNet3D, UNetConfig  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet_blocks import SpatialTransformer, TemporalTransformer  # noqa: E402

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "vectors"
PREFIX = "model.diffusion_model."


def _vector(name: str) -> Path:
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    return path


def _assert_all_within(results):
    assert results, "no comparisons made"
    bad = [f"{r.name}: rel {r.relative:.2e} > {r.tolerance:.0e} {r.note}" for r in results if not r.ok]
    assert bad == []


def _checksums(name: str) -> dict:
    return json.loads(_vector(name).read_text())


def _check_fill(unet: torch.nn.Module, table: dict, keys: list[str]) -> None:
    state = unet.state_dict()
    for key in keys:
        shape, total, total_abs, first = table[key]
        value = state[key[len(PREFIX):]].double()
        assert list(value.shape) == shape, key
        assert value.sum().item() == pytest.approx(total, abs=1e-9 * total_abs + 1e-12), key
        assert value.abs().sum().item() == pytest.approx(total_abs, rel=1e-9), key
        assert value.flatten()[0].item() == pytest.approx(first, rel=1e-7, abs=1e-12), key


@pytest.fixture(scope="module")
def reduced_unet():
    return verify_unet.build_filled_unet(UNetConfig.reduced())


def test_fill_rule_on_the_reduced_unet_matches_every_unet_checksum(reduced_unet):
    table = _checksums("fill_checksums_reduced.json")
    unet = reduced_unet
    keys = [k for k in table if k.startswith(PREFIX)]
    assert len(keys) == len(unet.state_dict()) == 1516
    _check_fill(unet, table, keys)


def test_fill_rule_matches_a_subset_of_the_full_unet_checksums():
    table = _checksums("fill_checksums_full.json")
    with torch.device("meta"):
        unet = UNet3D()
    shapes = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    keys = [k for k in table if k.startswith(PREFIX)]
    assert len(keys) == len(shapes)
    # Every 25th key plus the README's examples: all kinds of entries, seconds of work.
    sample = keys[::25] + [PREFIX + "input_blocks.1.0.in_layers.2.weight", PREFIX + "input_blocks.1.0.in_layers.0.weight"]
    for key in sample:
        shape, total, total_abs, first = table[key]
        assert list(shapes[key[len(PREFIX):]]) == shape, key
        value = fill_tensor(key, shape).double()
        assert value.sum().item() == pytest.approx(total, abs=1e-9 * total_abs + 1e-12), key
        assert value.abs().sum().item() == pytest.approx(total_abs, rel=1e-9), key
        assert value.flatten()[0].item() == pytest.approx(first, rel=1e-7, abs=1e-12), key


def test_reduced_unet_matches_unet_reduced_vectors(reduced_unet):
    _assert_all_within(verify_unet.check_unet_file(_vector("unet_reduced.npz"), reduced_unet))


def test_a_wrong_epsilon_would_be_caught(reduced_unet):
    """The tolerance is tight enough to see trap 5 (transformer GroupNorm eps 1e-5 instead of 1e-6)."""
    z = np.load(_vector("unet_reduced.npz"))
    norms = [m.norm for m in reduced_unet.modules() if isinstance(m, SpatialTransformer | TemporalTransformer)]
    inputs = torch.cat([torch.from_numpy(z["x"]), torch.from_numpy(z["c_concat"])], dim=1)
    try:
        for norm in norms:
            norm.eps = 1e-5
        with torch.inference_mode():
            out = reduced_unet(inputs, torch.from_numpy(z["t"]), torch.from_numpy(z["context"]),
                               torch.from_numpy(z["fs"]))
    finally:
        for norm in norms:
            norm.eps = 1e-6
    assert not verify_unet.compare("out", out, z["out"]).ok


def test_autograd_path_agrees_with_inference_path(reduced_unet):
    z = np.load(_vector("unet_reduced.npz"))
    unet = reduced_unet
    args = (torch.cat([torch.from_numpy(z["x_T4"]), torch.from_numpy(z["c_concat_T4"])], dim=1),
            torch.from_numpy(z["t"]), torch.from_numpy(z["context"]), torch.from_numpy(z["fs"]))
    with torch.inference_mode():
        a = unet(*args)
    b = unet(*args).detach()  # grad mode: no in-place residuals, no FF chunking
    assert torch.allclose(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))


@pytest.mark.slow
def test_full_width_unet_matches_unet_full_vectors():
    _assert_all_within(verify_unet.check_unet_full(_vector("unet_full.npz")))


def test_chunked_inference_path_gives_the_same_numbers(reduced_unet, monkeypatch):
    """With tiny chunk budgets every chunked branch runs (frames, pixel sequences, feed-forward rows,
    lazy skip concatenation) and must still match the original's output."""
    from tooncrafter_studio.diffusion.nets import unet_blocks

    monkeypatch.setattr(unet_blocks, "CHUNK_ELEMENTS", 1 << 12)
    monkeypatch.setattr(unet_blocks, "FF_CHUNK_ELEMENTS", 1 << 12)
    with torch.inference_mode():
        assert len(unet_blocks.chunk_ranges(32, 32 * 8 * 16)) > 1
    z = np.load(_vector("unet_reduced.npz"))
    inputs = torch.cat([torch.from_numpy(z["x"]), torch.from_numpy(z["c_concat"])], dim=1)
    with torch.inference_mode():
        out = reduced_unet(inputs, torch.from_numpy(z["t"]), torch.from_numpy(z["context"]), torch.from_numpy(z["fs"]))
    result = verify_unet.compare("out", out, z["out"])
    assert result.ok, result


def test_chunk_ranges_cover_everything_evenly():
    from tooncrafter_studio.diffusion.nets.unet_blocks import CHUNK_ELEMENTS, chunk_ranges

    with torch.inference_mode():
        ranges = chunk_ranges(16, 2560 * 320)  # full-resolution frames of the 512 model
        assert ranges == [(0, 4), (4, 8), (8, 12), (12, 16)]
        assert chunk_ranges(16, 10) == [(0, 16)]
        assert chunk_ranges(3, CHUNK_ELEMENTS * 5) == [(0, 1), (1, 2), (2, 3)]
    assert chunk_ranges(16, 2560 * 320) == [(0, 16)]  # autograd on: one piece
