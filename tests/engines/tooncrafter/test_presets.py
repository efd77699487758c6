"""Speed presets and the time estimate before a run (engines/tooncrafter/presets.py)."""

import json

import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.engines.tooncrafter import presets


def test_presets_choose_steps_and_explicit_steps_win():
    assert presets.steps_for("draft") == 15
    assert presets.steps_for("final") == 50
    assert presets.steps_for(None) == 50
    assert presets.steps_for("draft", steps=30) == 30
    assert presets.preset_of(15) == "draft" and presets.preset_of(25) is None
    with pytest.raises(InputError, match="draft, final"):
        presets.steps_for("fast")


def test_draft_steps_sit_on_the_same_trailing_spacing():
    pytest.importorskip("torch")
    from tooncrafter_studio.diffusion.nets.schedule import ddim_tables

    final = ddim_tables(None, presets.PRESETS["final"], 1.0)
    draft = ddim_tables(None, presets.PRESETS["draft"], 1.0)
    assert int(draft.timesteps.max()) == int(final.timesteps.max()) == 999
    assert len(draft.timesteps) == 15


def test_cpu_estimate_scales_with_steps_passes_and_cores():
    one = presets.estimate_run(15, "cpu", cpu_cores=2, measured={})
    assert one.step_seconds == pytest.approx(165.0)  # two forwards of 165 CPU-s over 2 cores
    final = presets.estimate_run(50, "cpu", cpu_cores=2, measured={})
    assert final.seconds - one.seconds == pytest.approx(35 * one.step_seconds)
    assert presets.estimate_run(15, "cpu", passes=3, cpu_cores=2, measured={}).seconds == pytest.approx(3 * one.seconds)
    assert presets.estimate_run(15, "cpu", cpu_cores=8, measured={}).step_seconds == pytest.approx(165.0 / 4)
    assert "CPU" in one.basis


@pytest.fixture
def cpu_kind():
    """Inject the kind of CPU (native bf16 or not) the estimate sees (diffusion/run/cpu_bf16.py)."""
    from tooncrafter_studio.diffusion.run import cpu_bf16

    yield cpu_bf16.set_override
    cpu_bf16.set_override(None)


def test_cpu_estimate_uses_the_bf16_figure_where_the_cpu_has_it(cpu_kind):
    cpu_kind(True)
    bf16 = presets.estimate_run(50, "cpu", cpu_cores=2, measured={})
    assert bf16.step_seconds == pytest.approx(presets.CPU_FORWARD_CPU_SECONDS["bf16"])
    assert "bf16" in bf16.basis
    # the default (and the GPU default fp16 saved in settings) means bf16 here; --dtype fp32 opts out
    assert presets.estimate_run(50, "cpu", dtype="fp16", cpu_cores=2, measured={}).step_seconds == bf16.step_seconds
    fp32 = presets.estimate_run(50, "cpu", dtype="fp32", cpu_cores=2, measured={})
    assert fp32.step_seconds == pytest.approx(165.0) and "fp32" in fp32.basis
    assert bf16.seconds < 0.5 * fp32.seconds  # what the bf16 default buys
    cpu_kind(False)
    assert presets.estimate_run(50, "cpu", cpu_cores=2, measured={}).step_seconds == pytest.approx(165.0)


def test_cpu_estimate_uses_the_selftest_measurement_of_the_run_precision(cpu_kind):
    measured = {"device_name": "Intel Xeon", "steps": [
        {"device": "cpu", "mode": "high", "dtype": "fp32", "step_seconds": 200.0},
        {"device": "cpu", "mode": "high", "dtype": "bf16", "step_seconds": 80.0}]}
    cpu_kind(True)
    bf16 = presets.estimate_run(15, "cpu", measured=measured)
    assert bf16.step_seconds == 80.0 and "measured" in bf16.basis and "bf16" in bf16.basis
    assert presets.estimate_run(15, "cpu", dtype="fp32", measured=measured).step_seconds == 200.0
    cpu_kind(False)
    assert presets.estimate_run(15, "cpu", measured=measured).step_seconds == 200.0


def test_gpu_estimate_uses_the_card_table_and_says_it_is_rough():
    fast = presets.estimate_run(50, "cuda", gpu_name="NVIDIA GeForce RTX 4090", measured={})
    slow = presets.estimate_run(50, "cuda", gpu_name="NVIDIA GeForce RTX 3060", measured={})
    unknown = presets.estimate_run(50, "cuda", gpu_name="Some Card", measured={})
    assert fast.step_seconds < slow.step_seconds
    assert "4090" in fast.basis and "rough" in fast.basis and "mid-range" in unknown.basis


def test_a_selftest_measurement_beats_the_table(tmp_path):
    measured = {"device_name": "NVIDIA H200", "steps": [
        {"device": "cuda", "mode": "high", "dtype": "fp16", "step_seconds": 0.5},
        {"device": "cuda", "mode": "low", "dtype": "fp16", "step_seconds": 2.0}]}
    presets.timings_path().parent.mkdir(parents=True, exist_ok=True)
    presets.timings_path().write_text(json.dumps(measured))
    high = presets.estimate_run(20, "cuda")
    low = presets.estimate_run(20, "cuda", mode="low")
    assert high.step_seconds == 0.5 and low.step_seconds == 2.0
    assert "measured" in high.basis and "H200" in high.basis
    assert presets.estimate_run(20, "cuda", dtype="bf16").basis.startswith("rough")  # nothing measured in bf16


def test_describe_plan_names_steps_preset_passes_and_time():
    line = presets.describe_plan({"steps": 15, "device": "cpu"}, [0.5])
    assert line.startswith("ToonCrafter: 15 steps (draft), 1 pass on cpu: about ")
    many = presets.describe_plan({"device": "cpu"}, [i / 20 for i in range(1, 20)])
    assert "50 steps (final), 3 passes" in many


def test_durations_read_well():
    assert presets.format_duration(42) == "42 s"
    assert presets.format_duration(600) == "10 min"
    assert presets.format_duration(3 * 3600) == "3.0 h"
