"""The bundle's licence notices cover what it carries: the base requirements and the gui extra (Qt)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "third_party_notices.py"
spec = importlib.util.spec_from_file_location("third_party_notices", TOOL)
notices = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notices)


def test_the_gui_extra_is_in_the_notices_and_other_extras_are_not():
    assert notices._bundled("numpy>=1.26")
    assert notices._bundled('PySide6-Essentials!=6.12.0,>=6.8; extra == "gui"')  # Qt ships in the bundle
    assert not notices._bundled('ray>=2.9; extra == "cluster"')
    assert not notices._bundled("torch==2.14.1; extra == 'tooncrafter'")
