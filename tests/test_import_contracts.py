"""The layering rules of the house, checked beyond import-linter's static view."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", [
    "tooncrafter_studio.core.progress",
    "tooncrafter_studio.engines.registry",
    "tooncrafter_studio.cli.main",
])
def test_headless_modules_import_neither_qt_nor_torch(module):
    loaded = _modules_after_import(module)
    assert "torch" not in loaded
    assert not any(name.startswith("PySide6") for name in loaded)


def test_import_linter_contracts_hold():
    from pathlib import Path

    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
