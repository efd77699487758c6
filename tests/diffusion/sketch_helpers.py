"""Shared paths and small models for the sketch tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The shared reference folder sits beside the checkout (tests/conftest.py); a worktree elsewhere
# can point at it with TOONCRAFTER_STUDIO_SHARED.
SHARED = Path(os.environ.get("TOONCRAFTER_STUDIO_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
REFERENCE = SHARED / "reference"
SKETCH_VECTORS = REFERENCE / "vectors" / "sketch"


def vector(name: str) -> Path:
    path = SKETCH_VECTORS / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    return path


def assert_all_within(results) -> None:
    assert results, "no comparisons made"
    bad = [f"{r.name}: rel {r.relative:.2e} > {r.tolerance:.0e} {r.note}" for r in results if not r.ok]
    assert bad == []
