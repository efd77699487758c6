"""`doctor --selftest` on the CPU: the reduced model through the production pipeline in each memory
mode against a float32 CPU run, a report a person can read, and what it skipped."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.cli.main import run_cli  # noqa: E402
from tooncrafter_studio.diffusion.checks import selftest  # noqa: E402

SMALL = {"size": (64, 64), "steps": 2}  # the CPU test's budget; the command uses 64x128 and 4 steps


@pytest.fixture(scope="module")
def cpu_report():
    return selftest.run_selftest("cpu", modes=("balanced",), **SMALL)  # high on the CPU is the reference itself


def test_cpu_selftest_runs_each_mode_in_float32_and_passes(cpu_report):
    rows = cpu_report.reduced
    assert [(r["mode"], r["dtype"]) for r in rows] == [("balanced", "fp32")]
    assert cpu_report.passed, cpu_report.failures
    # balanced: unbatched guidance and the lean decode, the same numbers up to summation order
    assert 0.0 <= rows[0]["video_error"] <= 1e-4
    assert cpu_report.full_size == []
    assert any("needs a CUDA GPU" in s for s in cpu_report.skipped)
    assert cpu_report.attention["fp32"] == "flash (CPU)"


def test_report_text_is_pasteable_and_names_versions(cpu_report):
    text = selftest.format_report(cpu_report)
    assert f"torch {torch.__version__}" in text
    assert "balanced  fp32" in text and "RESULT: PASS" in text
    assert "skipped: full-size UNet step" in text


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
