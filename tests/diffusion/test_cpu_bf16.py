"""CPU bf16 detection: the OS flags (fake /proc/cpuinfo texts), PyTorch's view and the numeric probe
combined into one verdict, and the CPU's default precision that follows from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tooncrafter_studio.diffusion.run import cpu_bf16

# First processor blocks of real machines (trimmed): an EPYC Genoa (AVX-512 BF16, no AMX), a
# Sapphire Rapids Xeon (both), a Skylake Xeon (AVX-512 without BF16), a laptop Ryzen (AVX2 only)
# and an ARM server (its `Features` line; bf16 there is not what we detect).
GENOA = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9454 48-Core Processor
flags\t\t: fpu vme de pse avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni vaes
bogomips\t: 5491.74

processor\t: 1
flags\t\t: fpu vme
"""
SAPPHIRE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
AMX_ONLY = "flags\t: fpu avx2 avx512f amx_bf16 amx_tile\n"
AMX_WITHOUT_TILE_STATE = "flags\t: fpu avx2 avx512f amx_bf16\n"  # a kernel that does not enable AMX state
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n"
RYZEN = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma bmi2 sha_ni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\nCPU implementer\t: 0x41\n"

TORCH_YES = (True, False, "AVX512", True)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    """Detection itself is tested here: no injected answer (conftest pins one for other tests)."""
    monkeypatch.delenv(cpu_bf16.ENV_OVERRIDE, raising=False)
    cpu_bf16.set_override(None)
    yield
    cpu_bf16.set_override(None)


@pytest.mark.parametrize("text, avx, amx, native", [
    (GENOA, True, False, True), (SAPPHIRE, True, True, True), (AMX_ONLY, False, True, True),
    (AMX_WITHOUT_TILE_STATE, False, False, False), (SKYLAKE, False, False, False), (RYZEN, False, False, False),
    (GRAVITON, False, False, False),
])
def test_flags_from_cpuinfo(text, avx, amx, native):
    flags = cpu_bf16.parse_cpuinfo_flags(text)
    support = cpu_bf16.support_from_flags(flags)
    assert (support.avx512_bf16, support.amx_bf16, support.native) == (avx, amx, native)
    assert support.source == "cpuinfo"


def test_only_the_first_processor_block_is_read():
    assert "avx512_bf16" in cpu_bf16.parse_cpuinfo_flags(GENOA)  # processor 1's short line is not it
    assert cpu_bf16.parse_cpuinfo_flags("processor\t: 0\nmodel name\t: x\n") is None


def test_os_flags_come_from_the_file_on_linux(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    path = tmp_path / "cpuinfo"
    path.write_text(GENOA)
    assert cpu_bf16.flags_support(path).native
    path.write_text(RYZEN)
    assert not cpu_bf16.flags_support(path).native
    assert cpu_bf16.read_os_flags(tmp_path / "missing") is None


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_other_systems_have_no_os_flags_and_defer_to_torch(tmp_path, monkeypatch, platform):
    path = tmp_path / "cpuinfo"
    path.write_text(GENOA)
    monkeypatch.setattr(sys, "platform", platform)
    assert cpu_bf16.read_os_flags(path) is None
    assert cpu_bf16.flags_support(path) is None
    # the verdict then rests on PyTorch's cpuinfo (it reads CPUID on every system)
    assert cpu_bf16.combine(None, TORCH_YES, 3e-3).native
    assert cpu_bf16.combine(None, (False, False, "AVX2", True), None).native is False


FLAGS = cpu_bf16.parse_cpuinfo_flags(GENOA)


@pytest.mark.parametrize("view, probe, native, words", [
    (TORCH_YES, 3e-3, True, "AVX-512 BF16"),
    ((True, True, "AVX512", True), None, True, "AVX-512 BF16"),
    ((False, False, "AVX512", True), 3e-3, False, "update PyTorch"),  # old torch, blind to the flags
    ((True, False, "AVX2", True), 3e-3, False, "AVX2 level"),  # ATEN_CPU_CAPABILITY=avx2
    ((True, False, "AVX512", False), 3e-3, False, "oneDNN"),
    (TORCH_YES, 0.5, False, "wrong numbers"),
    (TORCH_YES, float("inf"), False, "wrong numbers"),
    (TORCH_YES, float("nan"), False, "wrong numbers"),
    ((None, None, None, None), None, True, "AVX-512 BF16"),  # a torch that says nothing: the flags decide
])
def test_combined_verdict(view, probe, native, words):
    verdict = cpu_bf16.combine(FLAGS, view, probe)
    assert verdict.native is native
    assert words in verdict.reason


def test_flags_without_bf16_win_over_a_probe_that_works():
    verdict = cpu_bf16.combine(cpu_bf16.parse_cpuinfo_flags(RYZEN), TORCH_YES, 3e-3)
    assert not verdict.native and "emulated" in verdict.reason


def test_override_is_what_detection_answers_and_can_be_removed():
    cpu_bf16.set_override(True)
    assert cpu_bf16.detect().native and cpu_bf16.flags_support().native
    assert cpu_bf16.cpu_default_dtype() == "bf16"
    cpu_bf16.set_override(False)
    assert cpu_bf16.cpu_default_dtype() == "fp32"
    cpu_bf16.set_override(None)
    assert cpu_bf16.detect().source != "override"


def test_environment_variable_forces_the_verdict_in_child_processes_too(monkeypatch):
    monkeypatch.setenv(cpu_bf16.ENV_OVERRIDE, "1")
    assert cpu_bf16.detect().native and cpu_bf16.detect().source == "override"
    monkeypatch.setenv(cpu_bf16.ENV_OVERRIDE, "0")
    assert not cpu_bf16.detect().native
    code = "import tooncrafter_studio.diffusion.run.cpu_bf16 as m; print(m.flags_support().native)"
    for value, shown in (("0", "False"), ("1", "True")):  # whatever this machine is
        monkeypatch.setenv(cpu_bf16.ENV_OVERRIDE, value)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == shown
    monkeypatch.setenv(cpu_bf16.ENV_OVERRIDE, "maybe")  # not a verdict: detection decides
    assert cpu_bf16.detect().source != "override"


def test_default_dtype_follows_the_injected_capability():
    assert cpu_bf16.cpu_default_dtype(native=True) == "bf16"
    assert cpu_bf16.cpu_default_dtype(native=False) == "fp32"


def test_importing_the_module_does_not_import_torch():
    code = ("import sys; import tooncrafter_studio.diffusion.run.cpu_bf16 as m; m.flags_support(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_numeric_probe_and_detection_on_this_machine():
    pytest.importorskip("torch")
    error = cpu_bf16.numeric_probe()
    assert 1e-5 < error <= cpu_bf16.PROBE_TOLERANCE  # really bf16 (float32 would agree to 1e-7), and right
    verdict = cpu_bf16.detect()
    flags = cpu_bf16.read_os_flags()
    if flags is not None:  # Linux: agrees with the flags it read
        assert verdict.native == cpu_bf16.support_from_flags(flags).native
    assert set(verdict.as_json()) >= {"native", "avx512_bf16", "amx_bf16", "capability", "source", "reason"}


@pytest.mark.parametrize("native, requested, expected", [
    (True, None, "bf16"), (True, "auto", "bf16"), (True, "fp16", "bf16"), (True, "fp32", "fp32"),
    (True, "bf16", "bf16"),
    (False, None, "fp32"), (False, "auto", "fp32"), (False, "fp16", "fp32"), (False, "fp32", "fp32"),
    (False, "bf16", "bf16"),  # asked for: honoured (emulated, with a warning)
])
def test_cpu_precision_follows_the_kind_of_cpu(native, requested, expected):
    from tooncrafter_studio.diffusion.run import memory

    assert memory.resolve_dtype("cpu", requested, cpu_native_bf16=native) == expected
    cpu_bf16.set_override(native)  # the same through detection, as the engine asks
    assert memory.resolve_dtype("cpu", requested) == expected


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_gpus_keep_fp16_by_default_whatever_the_cpu(device):
    from tooncrafter_studio.diffusion.run import memory

    for native in (True, False):
        cpu_bf16.set_override(native)
        assert memory.resolve_dtype(device, None) == memory.resolve_dtype(device, "auto") == "fp16"
        assert memory.resolve_dtype(device, "bf16") == "bf16" and memory.resolve_dtype(device, "fp32") == "fp32"


def test_weight_dtype_on_the_cpu_follows_the_injected_capability():
    torch = pytest.importorskip("torch")
    from tooncrafter_studio.diffusion.run import memory

    cpu_bf16.set_override(True)
    assert memory.weight_dtype("cpu") == memory.weight_dtype("cpu", "fp16") == torch.bfloat16
    assert memory.weight_dtype("cpu", "fp32") == torch.float32
    cpu_bf16.set_override(False)
    assert memory.weight_dtype("cpu", "fp16") == torch.float32
    assert memory.weight_dtype("cuda", "fp16") == torch.float16
    from tooncrafter_studio.core.errors import InputError

    with pytest.raises(InputError, match="Unknown precision"):
        memory.resolve_dtype("cpu", "int8")


@pytest.mark.parametrize("native, default", [(True, "bf16"), (False, "fp32")])
def test_doctor_says_which_kind_of_cpu_and_its_default(capsys, native, default):
    pytest.importorskip("torch")
    from tooncrafter_studio.cli.main import run_cli

    cpu_bf16.set_override(native)
    assert run_cli(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"CPU: bf16 {'native' if native else 'not native'}" in out
    assert f"runs in {default} by default" in out


@pytest.mark.parametrize("native, basis", [("0", "CPU, fp32"), ("1", "CPU, bf16")])
def test_the_cpu_time_estimate_needs_no_torch(monkeypatch, native, basis):
    monkeypatch.setenv(cpu_bf16.ENV_OVERRIDE, native)
    code = ("import sys; from tooncrafter_studio.engines.tooncrafter import presets; "
            "e = presets.estimate_run(15, 'cpu', measured={}); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(e.basis)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(basis)
