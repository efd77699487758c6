"""The engine's real CUDA / MPS path, run on fake tensors (diffusion/checks/dryrun.py): no GPU needed.

The matrix runs the "tiny" configuration (the reduced model with one res-block per level and two
UNet levels, 64x64 frames: every layer kind, stage and memory path at a few percent of the cost);
one full-size run at the real 320x512x16 shapes checks the memory table.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tooncrafter_studio.cli.dryrun import dry_run, dry_run_config  # noqa: E402
from tooncrafter_studio.core.errors import Cancelled, OutOfMemory  # noqa: E402
from tooncrafter_studio.diffusion.checks import dryrun  # noqa: E402
from tooncrafter_studio.diffusion.run import memory  # noqa: E402

pytestmark = pytest.mark.slow
TINY = dry_run_config("tiny")
SIZE = (64, 64)
DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def _tiny(mode, dtype="fp16", **kwargs):
    return dry_run(mode, dtype, config=TINY, size=SIZE, **kwargs)


def _assert_clean(report, dtype="fp16"):
    assert report.violations == []
    assert report.misplaced == []
    assert report.live_after_unload == 0  # nothing left on the device once the engine lets go
    assert "float64" not in report.dtypes_on_device
    assert DTYPES[dtype] in report.dtypes_on_device  # the weights did run in half precision


@pytest.mark.parametrize("mode", memory.MODES)
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_every_memory_mode_and_half_precision_runs_on_fake_cuda(mode, dtype):
    report = _tiny(mode, dtype)
    assert report.error is None
    assert report.memory_mode == mode and report.modes_tried == [mode]
    _assert_clean(report, dtype)
    assert report.unet_batches == ([2] if mode == "high" else [1, 1])  # batched / separate guidance
    assert len(report.frames) == 1 and report.frames[0].shape == (*SIZE, 3) and report.frames[0].dtype == np.uint8
    assert set(report.stage_peaks) == {"text", "image", "vae_encode", "denoise", "decode"}
    assert 0 < report.peak_bytes == max(report.stage_peaks.values())


def test_more_than_fourteen_inbetweens_take_three_passes():
    report = _tiny("high", "bf16", times=[i / 16 for i in range(1, 16)])
    assert report.error is None and report.passes == 3
    assert report.unet_batches == [2, 2, 2]
    assert len(report.frames) == 15
    _assert_clean(report, "bf16")


def test_cancel_mid_denoise_leaves_nothing_on_the_device():
    report = _tiny("balanced", "bf16", steps=3, cancel_after_steps=1)
    assert isinstance(report.error, Cancelled)
    assert report.unet_batches == [1, 1]  # one step (two guidance passes), then stopped
    assert "decode" not in report.stage_peaks  # a cancelled run never decodes
    _assert_clean(report, "bf16")


def test_out_of_memory_in_the_unet_retries_one_mode_lower():
    report = _tiny("high", "fp16", oom_in=("high",))
    assert report.error is None
    assert report.modes_tried == ["high", "balanced"] and report.memory_mode == "balanced"
    assert report.unet_batches == [2, 1, 1]
    _assert_clean(report)


def test_out_of_memory_in_the_lowest_mode_fails_and_gives_the_gpu_back():
    report = _tiny("low", "fp16", oom_in=("low",))
    assert isinstance(report.error, OutOfMemory) and "low memory mode" in str(report.error)
    _assert_clean(report)


@pytest.mark.parametrize("mode", ["high", "balanced"])  # the plain and the lean decode
def test_mps_path_has_no_half_resize_no_float64_and_no_5d_group_norm(mode):
    report = _tiny(mode, "fp16", device="mps")  # (a 16 GB Mac is refused the high mode: see below)
    assert report.error is None and report.memory_mode == mode
    _assert_clean(report)
    assert report.dtypes_on_device  # the ops were seen on the mps device


def test_full_size_dry_run_picks_a_mode_for_an_8gb_card_and_matches_the_table():
    card = dryrun.CARDS["8gb"]
    report = dry_run("auto", "fp16", card=card)
    assert report.error is None
    expected = memory.choose_mode("auto", card.free_bytes, "fp16").mode
    assert report.memory_mode == expected == "balanced"
    _assert_clean(report)
    table = memory.DRY_RUN_PEAK_BYTES_FP16["balanced"]
    assert abs(report.peak_bytes - table) <= 0.02 * table
    assert memory.estimate_peak_bytes("balanced") <= card.free_bytes


@pytest.mark.parametrize("mode", ["high", "low"])  # balanced: the 8 GB card above
def test_full_size_dry_run_of_every_mode_matches_the_table_the_mode_choice_uses(mode):
    report = dry_run(mode, "fp16", card="80gb")
    assert report.error is None and report.memory_mode == mode
    table = memory.table_peak_bytes(mode, "fp16")
    assert report.peak_bytes <= table * 1.005  # the table may round up, never under-plan
    assert table - report.peak_bytes <= 0.02 * table


def test_full_size_float32_redecode_matches_its_table():
    report = dry_run("low", "fp16", card="80gb", overflow_decode=True)
    assert report.error is None and "float32" in report.dtypes_on_device
    table = memory.DRY_RUN_FP32_REDECODE_PEAK_BYTES_FP16["low"]
    assert abs(report.peak_bytes - table) <= 0.02 * table
    assert report.peak_bytes > memory.table_peak_bytes("low")  # the redo is what raises the low mode's peak
    assert memory.redecode_plan_bytes("low") == memory.with_overhead(table)
    assert memory.redecode_plan_bytes("low", "fp32") is None


# --------------------------------------------------------------------------------------------------
# Out of memory anywhere in the run: during a weight transfer, the encode, the UNet, the decode


@pytest.mark.parametrize(("where", "mode"), [("transfer", "high"), ("transfer", "balanced"), ("encode", "high"),
                                           ("unet", "balanced"), ("decode", "high")])
def test_out_of_memory_anywhere_retries_lower_with_nothing_left_on_the_device(where, mode):
    report = _tiny(mode, "fp16", oom_in=(mode,), oom_at=where)
    assert report.error is None
    assert report.modes_tried == [mode, memory.lower_mode(mode)]
    assert report.live_at_retry == [0]  # the failed attempt gave everything back before the retry
    _assert_clean(report)


@pytest.mark.parametrize("where", ["transfer", "decode"])
def test_out_of_memory_anywhere_in_the_lowest_mode_gives_the_gpu_back(where):
    report = _tiny("low", "fp16", oom_in=("low",), oom_at=where)
    assert isinstance(report.error, OutOfMemory)
    assert report.live_after_unload == 0 and report.misplaced == []


def test_the_float32_redo_of_an_overflowed_decode_runs_clean_on_fake_cuda():
    report = _tiny("balanced", "fp16", overflow_decode=True)
    assert report.error is None
    assert "float32" in report.dtypes_on_device
    assert report.violations == [] and report.misplaced == [] and report.live_after_unload == 0


# --------------------------------------------------------------------------------------------------
# The recorder flags what it must (so the clean runs above mean something)


def test_recorder_flags_float64_half_resize_and_5d_group_norm_on_mps():
    F = torch.nn.functional
    with dryrun.dry_run_session("mps") as session:
        x = torch.zeros(1, 32, 4, 8, 8, device="mps", dtype=torch.float16)
        F.group_norm(x.float(), 8)
        F.interpolate(x[:, :3, 0], size=(16, 16), mode="bicubic")
        x.double()
        F.group_norm(x.float().reshape(1, 32, 32, 8), 8)  # 4-D: fine
    whats = sorted({v.what for v in session.recorder.violations})
    assert whats == ["5-D GroupNorm on MPS", "float64 on the compute device", "half-precision resize on MPS"]


def test_recorder_flags_a_half_input_with_float_weights_in_conv_and_linear():
    F = torch.nn.functional
    with dryrun.dry_run_session("cuda", dryrun.CARDS["8gb"]) as session:
        x = torch.zeros(2, 4, device="cuda", dtype=torch.float16)
        F.linear(x, torch.zeros(3, 4, device="cuda"))
        F.conv2d(torch.zeros(1, 2, 8, 8, device="cuda", dtype=torch.float16), torch.zeros(2, 2, 3, 3, device="cuda"))
        F.linear(x, torch.zeros(3, 4, device="cuda", dtype=torch.float16))  # agreeing: fine
    whats = [(v.what, v.dtype) for v in session.recorder.violations]
    assert whats == [("operands of different dtypes", "float16, float32")] * 2


def test_fake_cuda_catches_device_mismatch_and_counts_live_bytes():
    with dryrun.dry_run_session("cuda", dryrun.CARDS["8gb"]) as session:
        assert torch.cuda.is_available() and torch.cuda.mem_get_info()[1] == 8 * dryrun.GiB
        a = torch.zeros(1024, 1024, device="cuda", dtype=torch.float16)  # 2 MiB
        b = a + 1
        assert session.recorder.live == 4 * 2**20
        del b
        assert session.recorder.live == 2 * 2**20
        with pytest.raises(RuntimeError, match="device"):
            a * torch.ones(1024, 1024)  # a CPU operand: what a real GPU refuses too
    assert session.recorder.peak == 4 * 2**20


def test_engine_probe_and_mode_choice_on_a_simulated_mac():
    from tooncrafter_studio.engines.tooncrafter import ToonCrafterEngine

    engine = ToonCrafterEngine(backend=lambda *a, **k: None, device="mps")
    with dryrun.simulated_device("mps", dryrun.CARDS["mac16gb"]):
        result = engine.probe()
        assert result.available and result.reason.startswith("MPS") and "memory mode" in result.reason
        assert memory.weight_dtype("mps", "fp16") == torch.float16
        assert memory.free_vram_bytes("mps")[1] == dryrun.CARDS["mac16gb"].total_bytes
    result = engine.probe()  # this machine has no Metal
    assert not result.available and "MPS" in result.reason


def test_doctor_estimate_vram_json_comes_from_the_dry_run(capsys, monkeypatch):
    import json

    from tooncrafter_studio.cli import dryrun as engine_dryrun
    from tooncrafter_studio.cli.main import run_cli

    real = engine_dryrun.dry_run
    monkeypatch.setattr(engine_dryrun, "dry_run", lambda *a, **k: real(*a, **k, config=TINY, size=SIZE))
    assert run_cli(["doctor", "--estimate-vram", "--memory", "low", "--dtype", "bf16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "low" and data["dtype"] == "bf16" and data["device"] == "cuda"
    assert set(data["stages"]) == {"text", "image", "vae_encode", "denoise", "decode"}
    assert data["peak_bytes"] == max(data["stages"].values()) > 0
    # beside the dry run: the figure the mode choice uses, and that with the allowance
    assert data["table_peak_bytes"] == memory.table_peak_bytes("low", "bf16")
    assert data["plan_bytes"] == memory.estimate_peak_bytes("low", "bf16") > data["table_peak_bytes"]
    assert data["fp32_redecode_plan_bytes"] == memory.redecode_plan_bytes("low", "bf16")


def test_doctor_without_flags_reports_environment(capsys):
    from tooncrafter_studio.cli.main import run_cli

    assert run_cli(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch" in out and "Model: not found" in out and "Looked in" in out
