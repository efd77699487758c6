"""--compile falls back to the uncompiled UNet with one log line wherever it cannot compile."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from tooncrafter_studio.diffusion.run import compile as compile_mod  # noqa: E402


def test_blockers_are_named():
    assert "balanced" in compile_mod.compile_blocker("cuda", "balanced")
    assert compile_mod.compile_blocker("cpu", "balanced") in (None, "no C++ compiler found",
                                                              "torch.compile's inductor backend is not supported on Windows here")


def test_a_blocked_compile_logs_one_line_and_leaves_the_module(caplog):
    module = torch.nn.Linear(3, 2)
    with caplog.at_level(logging.WARNING):
        assert compile_mod.compile_unet(module, "cuda", "low") is False
    assert module._compiled_call_impl is None
    assert len(caplog.records) == 1 and "uncompiled" in caplog.records[0].getMessage()


def test_a_failing_compiled_call_falls_back_once(monkeypatch, caplog):
    module = torch.nn.Linear(3, 2)
    calls = []

    def broken_compile(fn, **_options):
        def run(*args, **kwargs):
            calls.append(1)
            raise RuntimeError("inductor: cannot lower this graph\nmore detail")
        return run

    monkeypatch.setattr(compile_mod, "compile_blocker", lambda *a, **k: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.ones(1, 3)
    expected = torch.nn.functional.linear(x, module.weight, module.bias)
    with caplog.at_level(logging.WARNING):
        assert compile_mod.compile_unet(module, "cpu") is True
        first = module(x)
        second = module(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert calls == [1]  # the compiled path is dropped after its failure
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "cannot lower this graph" in messages[0] and "more detail" not in messages[0]
