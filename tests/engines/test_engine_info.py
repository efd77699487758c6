"""Engine labels and capabilities come from the registry without building an engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tooncrafter_studio.core.errors import InputError
from tooncrafter_studio.engines.base import Engine, EngineCapabilities, ProbeResult
from tooncrafter_studio.engines.registry import engine_info, register_engine, unregister_engine


class _Counted(Engine):
    id = "counted"
    label = "Counted"
    capabilities = EngineCapabilities(needs_gpu=True, seed_variants=True)
    built = 0

    def __init__(self) -> None:
        type(self).built += 1

    def probe(self) -> ProbeResult:
        return ProbeResult(True)

    def interpolate(self, request, progress=None, cancel=None):
        raise NotImplementedError


def test_builtin_engines_are_described_by_their_classes():
    flow = engine_info("flow")
    assert flow.label == "Optical flow (CPU)" and not flow.capabilities.needs_gpu
    tooncrafter = engine_info("tooncrafter")
    assert tooncrafter.capabilities.needs_gpu and tooncrafter.capabilities.seed_variants


def test_a_registered_class_is_read_not_built():
    _Counted.built = 0
    register_engine("counted", _Counted)
    try:
        info = engine_info("counted")
        assert info.label == "Counted" and info.capabilities.needs_gpu
        assert _Counted.built == 0
    finally:
        unregister_engine("counted")


def test_a_factory_function_is_called_once_and_remembered():
    _Counted.built = 0
    register_engine("counted", lambda: _Counted())
    try:
        assert engine_info("counted").label == "Counted"
        assert engine_info("counted").capabilities.seed_variants
        assert _Counted.built == 1
    finally:
        unregister_engine("counted")


def test_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="Unknown engine"):
        engine_info("nope")


def test_reading_the_tooncrafter_engine_imports_no_torch():
    code = ("import sys; from tooncrafter_studio.engines.registry import engine_info; "
            "engine_info('tooncrafter'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
