"""Shared test set-up: no display, a private user folder, GPU tests skipped without CUDA."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests compute the same numbers on every machine: the CPU counts as one without native bf16 (float32
# by default, diffusion/run/cpu_bf16.py) unless a test injects the other kind. Set here, before any
# fixture of any scope, and inherited by the processes tests start.
os.environ["TOONCRAFTER_STUDIO_CPU_BF16"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers (waiting.py) for every folder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"
VECTORS = REFERENCE / "vectors"


@pytest.fixture(autouse=True)
def _private_user_home(tmp_path_factory, monkeypatch):
    """Settings, caches and models of the tests never touch the real user folders."""
    home = tmp_path_factory.mktemp("studio-home")
    monkeypatch.setenv("TOONCRAFTER_STUDIO_HOME", str(home))
    monkeypatch.delenv("TOONCRAFTER_STUDIO_MODELS", raising=False)
    return home


def _cuda_available() -> bool:
    try:
        import torch
    except Exception:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
