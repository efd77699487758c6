"""`python -m tooncrafter_studio.diffusion.checks.verify VECTOR_DIR`: per-file, per-array report and exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from waiting import PROCESS_CEILING_S

pytest.importorskip("torch")

from tooncrafter_studio.diffusion.checks import verify  # noqa: E402

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "vectors"


@pytest.fixture
def fake_checkers(monkeypatch):
    """Replace the registry by two fake checkers: one file passes, one fails."""
    registry: dict = {}
    monkeypatch.setattr(verify, "CHECKERS", registry)
    monkeypatch.setattr(verify, "load_checkers", lambda: registry)
    registry["good.npz"] = lambda path: [verify.compare("a", np.ones(3), np.ones(3))]
    registry["bad.npz"] = lambda path: [verify.compare("b", np.array([1.0, 2.0]), np.array([1.0, 2.1])),
                                        verify.compare("c", np.zeros(2), np.zeros(3))]
    return registry


def test_all_within_tolerance_exits_zero_and_reports_each_array(tmp_path, fake_checkers, capsys):
    np.savez(tmp_path / "good.npz", a=np.ones(3))
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    assert verify.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "good.npz: ok" in out and "other.npz: skipped" in out
    assert "max|d| 0.000e+00" in out


def test_an_array_beyond_tolerance_exits_one_and_names_it(tmp_path, fake_checkers, capsys):
    np.savez(tmp_path / "good.npz", a=np.ones(3))
    np.savez(tmp_path / "bad.npz", a=np.ones(3))
    assert verify.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bad.npz: FAIL" in out
    assert "FAIL b" in out and "rel 4.762e-02" in out
    assert "FAIL c" in out and "shape" in out
    assert "1 of 2 files within tolerance" in out


def test_a_checker_that_crashes_is_reported_as_a_failure(tmp_path, fake_checkers, capsys):
    def boom(path):
        raise ValueError("broken input")

    fake_checkers["good.npz"] = boom
    np.savez(tmp_path / "good.npz", a=np.ones(3))
    assert verify.main([str(tmp_path)]) == 1
    assert "ERROR ValueError: broken input" in capsys.readouterr().out


def test_bad_folder_or_no_known_file_exits_two(tmp_path, fake_checkers):
    assert verify.main([str(tmp_path / "missing")]) == 2
    assert verify.main([str(tmp_path)]) == 2


def test_compare_uses_max_abs_reference_as_scale():
    r = verify.compare("x", np.array([1.0, -4.0]), np.array([1.0, -4.00004]))
    assert r.max_abs == pytest.approx(4e-5, rel=1e-6) and r.relative == pytest.approx(4e-5 / 4.00004, rel=1e-6)
    assert not verify.compare("x", np.array([np.nan]), np.array([1.0])).ok


def test_registry_knows_the_unet_files():
    checkers = verify.load_checkers()
    assert {"unet_reduced.npz", "unet_full.npz"} <= set(checkers)


def test_command_line_on_the_reduced_unet_vector(tmp_path):
    source = VECTORS / "unet_reduced.npz"
    if not source.exists():
        pytest.skip("unet_reduced.npz not available")
    (tmp_path / "unet_reduced.npz").symlink_to(source)
    proc = subprocess.run([sys.executable, "-m", "tooncrafter_studio.diffusion.checks.verify", str(tmp_path)],
                          capture_output=True, text=True, timeout=PROCESS_CEILING_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "unet_reduced.npz: ok (61 arrays" in proc.stdout
    assert "out_T4" in proc.stdout and "output_blocks.11 head" in proc.stdout
