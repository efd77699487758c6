"""What the dry run cannot see on its own (issue 21's risks), each shown on the CPU or on fake tensors.

Every test here failed before its fix: the OOM mid-transfer left weights on the device, cuBLAS and
cuDNN allocation failures were raw errors, a forced kernel failed on shapes it cannot take, ...
"""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.core.errors import OutOfMemory  # noqa: E402
from tooncrafter_studio.diffusion.run import memory  # noqa: E402


def _three_linears() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))


# -- 2: an OOM in the middle of a weight transfer ---------------------------------------------------

def test_oom_half_way_through_a_transfer_leaves_nothing_on_the_device(monkeypatch):
    model = _three_linears()
    unit = memory._Offloaded([model], "meta")
    real_to = torch.Tensor.to
    calls = {"n": 0}

    def failing_to(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the third of six tensors on its way over
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", failing_to)
    with pytest.raises(torch.OutOfMemoryError):
        unit.load()
    monkeypatch.setattr(torch.Tensor, "to", real_to)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert not unit.on_device
    unit.load()  # a later try starts clean and completes
    assert {p.device.type for p in model.parameters()} == {"meta"}
    unit.unload()
    assert {p.device.type for p in model.parameters()} == {"cpu"}


# -- 3: allocation failures that do not say "out of memory" ----------------------------------------

@pytest.mark.parametrize("message", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
])
def test_cublas_and_cudnn_allocation_failures_retry_one_mode_lower(message):
    tried = []

    def attempt(mode):
        tried.append(mode)
        if mode == "high":
            raise RuntimeError(message)
        return mode

    assert memory.is_out_of_memory(RuntimeError(message))
    assert memory.run_with_oom_retry(attempt, "high") == "balanced"
    assert tried == ["high", "balanced"]


def test_an_allocation_failure_in_the_lowest_mode_is_reported_as_out_of_memory():
    def attempt(mode):
        raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")

    with pytest.raises(OutOfMemory, match="low memory mode"):
        memory.run_with_oom_retry(attempt, "low")


def test_other_cudnn_errors_are_not_taken_for_out_of_memory():
    assert not memory.is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))  # not a runtime allocation failure
