"""`doctor --selftest` on the CPU: the reduced model through the production pipeline in each memory
mode against a float32 CPU run, a report a person can read, and what it skipped."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.cli.main import run_cli  # noqa: E402
from tooncrafter_studio.diffusion.checks import selftest  # noqa: E402
from tooncrafter_studio.diffusion.nets.unet import UNetConfig  # noqa: E402
from tooncrafter_studio.diffusion.run import cpu_bf16  # noqa: E402

SMALL = {"size": (64, 64), "steps": 2}  # the CPU test's budget; the command uses 64x128 and 4 steps


# the CPU's timed forward on the reduced UNet at a small latent instead of the full width (minutes)
TINY_FORWARD = {"cpu_unet": UNetConfig.reduced(), "cpu_latent": (8, 16)}


@pytest.fixture(scope="module")
def cpu_report():  # (conftest pins a CPU without native bf16)
    return selftest.run_selftest("cpu", modes=("balanced",), **SMALL, **TINY_FORWARD)  # high: the reference itself


@pytest.fixture(scope="module")
def bf16_cpu_report():
    """The self-test on a CPU with native bf16 (injected: the verdict of run/cpu_bf16.py)."""
    cpu_bf16.set_override(True)
    try:
        return selftest.run_selftest("cpu", modes=("balanced",), **SMALL, **TINY_FORWARD)
    finally:
        cpu_bf16.set_override(None)


def test_cpu_selftest_runs_each_mode_in_float32_and_passes(cpu_report):
    rows = cpu_report.reduced
    assert [(r["mode"], r["dtype"]) for r in rows] == [("balanced", "fp32")]
    assert cpu_report.passed, cpu_report.failures
    # balanced: unbatched guidance and the lean decode, the same numbers up to summation order
    assert 0.0 <= rows[0]["video_error"] <= 1e-4
    assert [(r["device"], r["dtype"]) for r in cpu_report.full_size] == [("cpu", "fp32")]
    assert cpu_report.full_size[0]["forward_cpu_s"] > 0 and "error" not in cpu_report.full_size[0]
    assert cpu_report.cpu_bf16_speedup is None and cpu_report.as_json()["cpu_bf16_speedup"] is None
    assert any("need a CUDA GPU" in s for s in cpu_report.skipped)
    assert any(s.startswith("bf16 runs: this CPU runs in float32") for s in cpu_report.skipped)
    assert cpu_report.attention["fp32"] == "flash (CPU)"


def test_cpu_with_native_bf16_adds_bf16_runs_and_the_speedup(bf16_cpu_report):
    report = bf16_cpu_report
    assert [(r["mode"], r["dtype"]) for r in report.reduced] == [("balanced", "fp32"), ("balanced", "bf16")]
    assert report.passed, report.failures
    bf16 = report.reduced[1]
    assert 1e-4 < bf16["video_error"] <= bf16["video_limit"]  # really bf16, and within precision.py's limit
    assert [r["dtype"] for r in report.full_size] == ["fp32", "bf16"]
    timed = report.full_size[1]
    assert 0 < timed["error_vs_fp32"] <= timed["limit"]
    data = report.as_json()
    assert data["cpu_bf16_speedup"] == report.cpu_bf16_speedup > 0
    assert data["cpu_bf16_speedup"] == pytest.approx(report.full_size[0]["forward_cpu_s"] / timed["forward_cpu_s"],
                                                     rel=1e-2)
    assert report.attention["bf16"] == "flash (CPU)"
    text = selftest.format_report(report)
    assert "cpu_bf16_speedup:" in text and "balanced  bf16" in text
    # a custom-size forward does not feed the time estimate (only the full width's seconds do)
    assert selftest.step_timings(report)["steps"] == []


def test_a_bf16_forward_beyond_tolerance_fails_the_selftest(monkeypatch):
    """A bf16 kernel that computes wrong numbers shows as a failure of the timed forward."""
    real = selftest.relative_error
    monkeypatch.setattr(selftest, "relative_error", lambda a, b: 10 * real(a, b) + 1.0)
    rows = selftest.run_cpu_forwards(["fp32", "bf16"], UNetConfig.reduced(), (8, 16))
    assert "error" not in rows[0] and "differs from float32" in rows[1]["error"]
    report = selftest.SelftestReport(selftest.environment(torch.device("cpu")), full_size=rows)
    assert not report.passed and "full-size high bf16" in report.failures[0]


def test_full_width_cpu_timings_feed_the_estimate():
    report = selftest.SelftestReport({"device": "cpu", "device_name": "x", "torch": "t"}, full_size=[
        {"device": "cpu", "mode": "high", "dtype": "fp32", "size": "full", "forward_cpu_s": 170.0,
         "forward_seconds": 90.0, "step_seconds": 180.0},
        {"device": "cpu", "mode": "high", "dtype": "bf16", "size": "full", "forward_cpu_s": 70.0,
         "forward_seconds": 37.0, "step_seconds": 74.0}])
    steps = selftest.step_timings(report)["steps"]
    assert steps == [{"device": "cpu", "mode": "high", "dtype": "fp32", "step_seconds": 180.0},
                     {"device": "cpu", "mode": "high", "dtype": "bf16", "step_seconds": 74.0}]
    assert report.cpu_bf16_speedup == pytest.approx(170 / 70, rel=1e-3)


def test_report_text_is_pasteable_and_names_versions(cpu_report):
    text = selftest.format_report(cpu_report)
    assert f"torch {torch.__version__}" in text
    assert "balanced  fp32" in text and "RESULT: PASS" in text
    assert "skipped: fp16 runs and the full-size step per memory mode" in text
    assert "UNet forward on the CPU" in text and "cpu bf16: not native" in text


def test_a_wrong_result_fails_the_selftest():
    """A run whose numbers differ beyond the tolerance is reported as a failure (exit status 1)."""
    model = selftest._reduced_model()
    inputs = selftest.reduced_inputs((64, 64), 1)
    reference = selftest._generate(model, None, *inputs)
    reference.video = reference.video + 0.5  # what a broken kernel would look like
    row = selftest.run_reduced(torch.device("cpu"), "fp32", "high", reference, inputs, model)
    assert not row["ok"] and row["video_error"] > row["video_limit"]
    report = selftest.SelftestReport(selftest.environment(torch.device("cpu")), reduced=[row])
    report.environment["reduced_geometry"] = {"height": 64, "width": 64, "frames": 16, "steps": 2}
    assert not report.passed
    assert "BEYOND TOLERANCE" in selftest.format_report(report)


def test_doctor_selftest_json_on_the_cpu(monkeypatch, capsys, cpu_report):
    calls = {}

    def small(device, progress=None, **kwargs):  # the module's run, to keep the CPU time low
        calls["device"] = device
        return cpu_report

    monkeypatch.setattr(selftest, "run_selftest", small)
    assert run_cli(["doctor", "--selftest", "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert calls["device"] == "cpu"
    assert data["passed"] and [r["mode"] for r in data["reduced"]] == ["balanced"]
    assert data["environment"]["torch"] == torch.__version__
    assert data["skipped"]


def test_doctor_device_needs_selftest(capsys):
    assert run_cli(["doctor", "--device", "cpu"]) != 0
    assert "--device is used with --selftest" in capsys.readouterr().err
