"""The sampler's checkers are part of `python -m tooncrafter_studio.diffusion.checks.verify`."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from tooncrafter_studio.diffusion.checks import verify, verify_sampler  # noqa: E402

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "vectors"


def test_checkers_are_registered():
    checkers = verify.load_checkers()
    assert checkers["schedule.npz"] is verify_sampler.check_schedule
    assert checkers["ddim_reduced.npz"] is verify_sampler.check_ddim_reduced
    assert checkers["e2e_reduced.npz"] is verify_sampler.check_e2e_reduced


def test_verify_schedule_passes_and_reports_per_array(capsys):
    if not (VECTORS / "schedule.npz").exists():
        pytest.skip("vectors not available")
    assert verify.main([str(VECTORS), "--only", "schedule"]) == 0
    out = capsys.readouterr().out
    assert "schedule.npz: ok" in out and "buffer/alphas_cumprod" in out and "ddim_S50_eta1/ddim_sigmas" in out
