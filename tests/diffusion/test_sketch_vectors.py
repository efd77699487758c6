"""Every file of vectors/sketch/ passes through the verify tool's checkers at the README's
tolerances: preprocessing, reduced encoder (both context variants), reduced UNet with control,
e2e, full encoder and both fill-rule checksum tables."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from sketch_helpers import SKETCH_VECTORS, assert_all_within, vector  # noqa: E402

from tooncrafter_studio.diffusion.checks import verify, verify_sketch  # noqa: E402


def test_preprocessing_matches_the_fork_and_composites_alpha_over_white():
    assert_all_within(verify_sketch.check_preprocess(vector("sketch_preprocess.npz")))


def test_reduced_encoder_residuals_and_probes_for_both_context_variants():
    assert_all_within(verify_sketch.check_encoder_reduced(vector("sketch_encoder_reduced.npz")))


def test_reduced_unet_with_control_cond_uncond_batched_and_scale_zero():
    results = verify_sketch.check_unet_reduced(vector("sketch_unet_reduced.npz"))
    names = {r.name for r in results}
    assert {"ctx333/out_scale0.6", "ctx77/out_scale1.0", "scale 0 == out_plain bit for bit"} <= names
    assert_all_within(results)


def test_reduced_fill_checksums():
    assert_all_within(verify_sketch.check_checksums_reduced(vector("fill_checksums_sketch_reduced.json")))


@pytest.mark.slow
def test_e2e_generation_with_sketches_replays_the_fork():
    assert_all_within(verify_sketch.check_e2e_reduced(vector("sketch_e2e_reduced.npz")))


def test_full_encoder_keys_and_a_sample_of_its_fill_checksums():
    path = vector("fill_checksums_sketch_full.json")
    assert_all_within(verify_sketch.check_checksums(path, verify_sketch.SketchEncoderConfig(), every=17))


@pytest.mark.slow
def test_full_encoder_residuals_for_both_context_variants():
    assert_all_within(verify_sketch.check_encoder_full(vector("sketch_encoder_full.npz")))


def test_the_verify_tool_has_a_checker_for_every_sketch_vector_file():
    if not SKETCH_VECTORS.is_dir():
        pytest.skip("vectors/sketch not available")
    checkers = verify.load_checkers()
    files = sorted(p.name for p in SKETCH_VECTORS.iterdir() if p.suffix in (".npz", ".json"))
    assert len(files) == 7
    assert [f for f in files if f not in checkers] == []
