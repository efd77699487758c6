"""The autoencoder, CLIP encoders, Resampler and preprocessing reproduce the original's numbers
(vectors/README §3), within 1e-5 of max |reference| for single forwards; integers exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tooncrafter_studio.diffusion.checks import verify_encoders as ve  # noqa: E402

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "vectors"


def _vector(name: str) -> Path:
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    return path


def _assert_all_within(results, expected_names=()):
    assert results, "no comparisons made"
    names = {r.name for r in results}
    assert set(expected_names) <= names, f"missing comparisons: {set(expected_names) - names}"
    bad = [f"{r.name}: rel {r.relative:.2e} > {r.tolerance:.0e} {r.note}" for r in results if not r.ok]
    assert bad == []


def test_vae_reduced():
    results = ve.check_vae_reduced(_vector("vae_reduced.npz"))
    _assert_all_within(results, ["posterior_mean", "posterior_logvar", "z", "decode16", "decode14", "final"]
                       + [f"hidden{i}" for i in range(5)])


def test_clip_preprocess():
    _assert_all_within(ve.check_clip_preprocess(_vector("clip_preprocess.npz")),
                       ["out", "out2", "out_zeros_image_per_channel"])


def test_pixel_preprocess():
    _assert_all_within(ve.check_pixel_preprocess(_vector("pixel_preprocess.npz")), ["r3x2/output_u8"])


def test_e2e_conditioning():
    results = ve.check_e2e_conditioning(_vector("e2e_reduced.npz"))
    _assert_all_within(results, ["tokens", "tokens_empty", "text_emb", "text_emb_uncond", "img_tokens",
                                 "img_tokens_uncond", "img_emb", "img_emb_uncond", "cond_context",
                                 "uncond_context", "c_concat"])


def test_pixel_conversion():
    _assert_all_within(ve.check_pixel_conversion())


@pytest.mark.slow
def test_vae_full_tiny():
    results = ve.check_vae_full_tiny(_vector("vae_full_tiny.npz"))
    _assert_all_within(results, ["decode16", "decode14", "final", "hidden0 stats", "hidden4 head"])


@pytest.mark.slow
def test_clip_text_full():
    _assert_all_within(ve.check_clip_text_full(_vector("clip_text_full.npz")), ["tokens", "out"])


@pytest.fixture(scope="module")
def full_embedder_and_zero_tokens():
    _vector("clip_vision_full.npz")
    embedder = ve.build_filled(ve.ImageEmbedder, ve.IMAGE_PREFIX)
    return embedder, ve.zero_image_tokens(embedder)


@pytest.mark.slow
def test_clip_vision_full(full_embedder_and_zero_tokens):
    _vector("clip_preprocess.npz")
    embedder, zero = full_embedder_and_zero_tokens
    results = ve.check_clip_vision_full(_vector("clip_vision_full.npz"), embedder=embedder, zero_tokens=zero)
    _assert_all_within(results, ["tokens", "tokens_zero_image stats", "tokens_zero_image head"])


@pytest.mark.slow
def test_resampler_full(full_embedder_and_zero_tokens):
    # The zero-image tokens come from our embedder (checked against its own vector above).
    results = ve.check_resampler_full(_vector("resampler_full.npz"), zero_tokens=full_embedder_and_zero_tokens[1])
    _assert_all_within(results, ["out", "out_random_b2_head", "out_zero_image stats", "out_zero_image head",
                                 "input_random_b2_stats"])
